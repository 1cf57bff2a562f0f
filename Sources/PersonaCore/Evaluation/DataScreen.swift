import Foundation
import PersonaGeneration
import PersonaModels
import PersonaTokenizers

/// One training sample: a conversation up to the last assistant turn, and that turn's text.
public struct ScreenSample: Sendable, Equatable {
    public var messages: [ChatMessage]
    public var response: String
    /// The line as read, written back unchanged for flagged rows.
    public var line: String

    /// Reads JSON lines of `{"messages": [...]}` (the last message the assistant's) or `{"prompt": ..., "response": ...}`
    /// (also `"completion"`); errors name the file and line.
    public static func load(_ url: URL) throws -> [ScreenSample] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw VectorError("\(url.path): cannot read (\(error.localizedDescription))")
        }
        var out: [ScreenSample] = []
        for (i, raw) in fileLines(text).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw VectorError("\(url.path): line \(i + 1) is not a JSON object")
            }
            if let ms = obj["messages"] as? [[String: Any]] {
                let messages = try ms.map { m -> ChatMessage in
                    guard let role = m["role"] as? String, let content = m["content"] as? String else {
                        throw VectorError("\(url.path): line \(i + 1): every message needs string 'role' and 'content'")
                    }
                    return ChatMessage(role: role, content: content)
                }
                guard let last = messages.last, last.role == "assistant", messages.count >= 2 else {
                    throw VectorError("\(url.path): line \(i + 1): 'messages' must end with an assistant message after at least one other")
                }
                out.append(ScreenSample(messages: Array(messages.dropLast()), response: last.content, line: line))
            } else if let p = obj["prompt"] as? String, let r = (obj["response"] ?? obj["completion"]) as? String {
                out.append(ScreenSample(messages: [ChatMessage(role: "user", content: p)], response: r, line: line))
            } else {
                throw VectorError("\(url.path): line \(i + 1): expected 'messages' or 'prompt' with 'response'")
            }
            // a mean over no tokens has no value; it used to be written as 0, a projection like any other
            if out.last!.response.isEmpty {
                throw VectorError("\(url.path): line \(i + 1): the response is empty (there is nothing to project)")
            }
        }
        guard !out.isEmpty else { throw VectorError("\(url.path): no samples") }
        return out
    }
}

/// One sample's result: per trait, the mean projection of the sample's response and of the model's own answer to
/// the same prompt, at the trait's monitoring row, and their difference.
public struct ScreenResult: Codable, Sendable, Equatable {
    public var index: Int
    public var dataProjection: [String: Double]
    public var ownProjection: [String: Double]
    public var difference: [String: Double]
    public var ownAnswer: String
}

/// The paper's data screening: a sample whose response projects far above what the model itself would answer
/// would push the model toward the trait if trained on. Results are written ahead (screen.jsonl), so a long
/// data set resumes.
public final class DataScreen {
    public let loaded: LoadedModel
    public let vectors: [TraitVector]
    public let maxTokens: Int
    private let log: AppendLog<ScreenResult>
    public private(set) var results: [Int: ScreenResult] = [:]

    /// How many of `count` samples `--flag-top fraction` flags: rounded up, so any fraction above 0 flags at least
    /// the highest sample (10% of 3 samples rounded to nearest flagged none of them, however far above the rest),
    /// with a little slack for products like 0.1 x 30 = 3.0000000000000004, which are 3.
    public static func flagCount(of count: Int, fraction: Double) -> Int {
        guard count > 0, fraction > 0 else { return 0 }
        return min(count, max(1, Int((Double(count) * fraction - 1e-9).rounded(.up))))
    }

    public init(loaded: LoadedModel, vectors: [TraitVector], maxTokens: Int, folder: URL) throws {
        self.loaded = loaded
        self.vectors = vectors
        self.maxTokens = maxTokens
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw VectorError("\(folder.path): cannot create the folder (\(error.localizedDescription))")
        }
        log = AppendLog(folder.appendingPathComponent("screen.jsonl"))
        for r in try log.readAll() { results[r.index] = r }
    }

    /// Mean projection per trait over positions P..<tokens.count, from one plain forward pass.
    func projections(_ tokens: [Int], promptLength P: Int) throws -> [String: Double] {
        guard tokens.count > P else { throw VectorError("data screen: no response tokens to project (prompt of \(P) tokens)") }
        let trace = try HiddenStateTrace.run(model: loaded.model, tokens: tokens)
        var out: [String: Double] = [:]
        for v in vectors {
            out[v.trait] = RowProjector(v.rows[v.defaultRow]).mean(trace.hiddenStates[v.defaultRow], P..<tokens.count)
        }
        return out
    }

    /// Screens every sample not yet done; the model's own answers (greedy) are generated `batchSize` at a time.
    public func run(_ samples: [ScreenSample], batchSize: Int = 16, progress: ExtractionProgress? = nil) throws {
        let gen = Generator(loaded)
        let todo = samples.indices.filter { results[$0] == nil }
        var done = 0
        for start in stride(from: 0, to: todo.count, by: max(1, batchSize)) {
            let group = Array(todo[start..<min(todo.count, start + batchSize)])
            let prompts = try group.map { try gen.promptIds(messages: samples[$0].messages, raw: false) }
            var options = GenerationOptions(maxTokens: maxTokens)
            options.sampling.temperature = 0
            let own = try gen.generate(batch: prompts, options: Array(repeating: options, count: group.count),
                                       hooks: Array(repeating: HookSet(), count: group.count))
            for (k, i) in group.enumerated() {
                let p = prompts[k]
                let dataIds = loaded.tokenizer.tokenizer.encode(samples[i].response, addSpecialTokens: false)
                let d = try projections(p + dataIds, promptLength: p.count)
                // The end-of-turn token is left out, as the data response has none; unless the model's whole answer
                // is that token: then it is what the model would say (a mean over no tokens used to read as 0).
                let answered = own[k].tokenIds.filter { !loaded.eosTokenIds.contains($0) }
                let ownIds = answered.isEmpty ? own[k].tokenIds : answered
                let o = try projections(p + ownIds, promptLength: p.count)
                var diff: [String: Double] = [:]
                for (t, x) in d { diff[t] = x - (o[t] ?? 0) }
                let r = ScreenResult(index: i, dataProjection: d, ownProjection: o, difference: diff, ownAnswer: own[k].text)
                try log.append(r)
                results[i] = r
                done += 1
                progress?(done, todo.count, "samples")
            }
        }
    }
}
