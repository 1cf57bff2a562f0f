import Foundation
import PersonaFormats
import XCTest

/// Reference outputs of transformers saved by Scripts/make_model_fixtures.py.
struct Reference {
    let tensors: SafetensorsFile
    let json: [String: Any]

    init(safetensors: URL, json: URL) throws {
        tensors = try SafetensorsFile(url: safetensors)
        self.json = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any] ?? [:]
    }

    func floats(_ name: String) throws -> (shape: [Int], values: [Float]) {
        guard let t = tensors.tensor(name) else { throw XCTSkip("reference has no tensor \(name)") }
        XCTAssertEqual(t.dtype, .f32)
        let values = Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Float.self), count: t.elementCount))
        return (t.shape, values)
    }

    func ints(_ key: String) -> [Int] { (json[key] as? [NSNumber])?.map { $0.intValue } ?? [] }
    func string(_ key: String) -> String? { json[key] as? String }
}

/// The tiny random models of every architecture and their transformers references (Fixtures/<arch>).
enum ArchitectureFixtures {
    static let names = ["llama", "llama2", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "smollm3", "phi3", "phi3_longrope", "phi4_mini", "olmo2", "qwen2_yarn", "olmo3", "granite", "qwen3_moe", "mixtral", "olmoe", "glm4", "cohere", "cohere2", "ernie4_5", "exaone4", "gpt2", "gpt_neox", "phi", "stablelm", "olmo", "starcoder2", "nemotron", "qwen2_moe", "granitemoe", "arcee", "seed_oss", "ministral3", "gpt_oss"]

    static func url(_ name: String) -> URL { Repository.modelFixtures.appendingPathComponent(name) }

    static func reference(_ arch: String) throws -> Reference {
        try Reference(safetensors: url(arch).appendingPathComponent("reference.safetensors"),
                      json: url(arch).appendingPathComponent("reference.json"))
    }

    /// A copy of fixture `arch` (its references left out) in a new temporary folder, config.json changed by `edit`;
    /// the caller removes it.
    static func edited(_ arch: String, edit: (inout [String: Any]) -> Void) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("persona-\(arch)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: url(arch).path) where !f.hasPrefix("reference") {
            try FileManager.default.copyItem(at: url(arch).appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    /// Runs `body` for every architecture, reporting each failure separately.
    static func each(_ body: (String) throws -> Void) {
        for arch in names {
            do { try body(arch) } catch { XCTFail("\(arch): \(error)") }
        }
    }
}

/// A GGUF file rewritten with metadata keys changed: `dropping` left out, `setting` added or replaced; tensors as
/// they are. Written to a new temporary file, which the caller removes.
func ggufCopy(of src: URL, dropping: Set<String> = [], setting: [String: GGUFValue] = [:]) throws -> URL {
    let file = try GGUFFile(url: src)
    var w = GGUFWriter()
    for k in file.metadataKeys where !dropping.contains(k) { w.set(k, file.metadata[k]!) }
    for (k, v) in setting { w.set(k, v) }
    for n in file.tensorNamesInFileOrder {
        let t = file.tensor(n)!
        try w.addTensor(name: n, dtype: t.dtype, shape: t.shape, data: Data(bytes: t.data, count: t.byteCount))
    }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("persona-copy-\(UUID().uuidString).gguf")
    try w.write(to: url)
    return url
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var m: Float = 0
    for i in a.indices {
        let d = abs(a[i] - b[i])
        if d.isNaN { return .nan }
        m = max(m, d)
    }
    return m
}
