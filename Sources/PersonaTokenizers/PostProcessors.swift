import Foundation

/// tokenizer.json `post_processor`: adds special tokens around an encoded sequence.
protocol PostProcessor {
    func process(_ ids: [Int]) -> [Int]
    /// Ids it puts before the sequence (to report BOS behaviour).
    var prefixIds: [Int] { get }
}

func makePostProcessor(_ obj: JSONObject) throws -> PostProcessor {
    switch try obj.type() {
    case "TemplateProcessing": return try TemplatePostProcessor(obj)
    case "ByteLevel": return IdentityPostProcessor()
    case "RobertaProcessing", "BertProcessing":
        func pair(_ k: String) throws -> Int {
            guard let a = obj.array(k), a.count == 2, let id = a[1].int else {
                throw TokenizerError("\(obj.path).\(k): expected [token, id]")
            }
            return id
        }
        let cls = try pair("cls"), sep = try pair("sep")
        return SimplePostProcessor(before: [cls], after: [sep])
    case "Sequence":
        return SequencePostProcessor(items: try obj.objects("processors").map(makePostProcessor))
    case let t: throw TokenizerError("\(obj.path): unsupported post_processor type \"\(t)\"")
    }
}

struct IdentityPostProcessor: PostProcessor {
    func process(_ ids: [Int]) -> [Int] { ids }
    var prefixIds: [Int] { [] }
}

struct SimplePostProcessor: PostProcessor {
    let before: [Int], after: [Int]
    func process(_ ids: [Int]) -> [Int] { before + ids + after }
    var prefixIds: [Int] { before }
}

struct TemplatePostProcessor: PostProcessor {
    let before: [Int], after: [Int]

    init(_ obj: JSONObject) throws {
        var specials: [String: [Int]] = [:]
        if let st = try obj.object("special_tokens") {
            for (k, v) in st.members {
                let o = try JSONObject(v, path: "\(st.path).\(k)")
                specials[k] = (o.array("ids") ?? []).compactMap(\.int)
            }
        }
        var b: [Int] = [], a: [Int] = []
        var seenSequence = false
        for item in try obj.objects("single") {
            if let s = try item.object("SpecialToken") {
                let name = try s.requireString("id")
                guard let ids = specials[name] else { throw TokenizerError("\(s.path): special token \(name) not in special_tokens") }
                if seenSequence { a += ids } else { b += ids }
            } else if item.has("Sequence") {
                seenSequence = true
            } else {
                throw TokenizerError("\(item.path): expected SpecialToken or Sequence")
            }
        }
        before = b
        after = a
    }

    func process(_ ids: [Int]) -> [Int] { before + ids + after }
    var prefixIds: [Int] { before }
}

struct SequencePostProcessor: PostProcessor {
    let items: [PostProcessor]
    func process(_ ids: [Int]) -> [Int] { items.reduce(ids) { $1.process($0) } }
    var prefixIds: [Int] { items.flatMap(\.prefixIds) }
}
