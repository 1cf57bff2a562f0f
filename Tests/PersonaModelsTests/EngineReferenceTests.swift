import Foundation
import PersonaFormats
import PersonaGeneration
import PersonaModels
import PersonaTokenizers
import XCTest
@testable import PersonaTestSupport

/// Every architecture against transformers (f32 compute over bf16 weights): hidden states, logits,
/// greedy continuation, and cached decode vs uncached recompute.
final class EngineReferenceTests: XCTestCase {
    let tolerance: Float = 1e-4

    func fixture(_ name: String) -> URL { ArchitectureFixtures.url(name) }
    func reference(_ name: String) throws -> Reference { try ArchitectureFixtures.reference(name) }
    func eachArchitecture(_ body: (String) throws -> Void) { ArchitectureFixtures.each(body) }

    func checkHiddenStates(model: TransformerModel, ref: Reference, label: String) throws {
        let ids = ref.ints("input_ids")
        XCTAssertFalse(ids.isEmpty, "\(label): reference has no input_ids")
        let trace = try HiddenStateTrace.run(model: model, tokens: ids)
        XCTAssertEqual(trace.hiddenStates.count, model.config.numLayers + 1)
        for (i, h) in trace.hiddenStates.enumerated() {
            let r = try ref.floats("hidden_states.\(i)")
            XCTAssertEqual(r.shape, [ids.count, model.config.hiddenSize], "\(label) hidden_states.\(i) shape")
            let d = maxAbsDiff(h, r.values)
            XCTAssertLessThanOrEqual(d, tolerance, "\(label) hidden_states.\(i) max |diff| \(d)")
        }
        let r = try ref.floats("logits")
        let d = maxAbsDiff(trace.logits, r.values)
        XCTAssertLessThanOrEqual(d, tolerance, "\(label) logits max |diff| \(d)")
    }

    func greedy(model: TransformerModel, prompt: [Int], steps: Int) throws -> [Int] {
        let cache = model.makeCache(capacity: prompt.count + steps)
        var out: [Int] = []
        var logits = try model.forward(prompt, cache: cache, logits: .last)
        for _ in 0..<steps {
            let id = Sampler.argmax(logits)
            out.append(id)
            if out.count == steps { break }
            logits = try model.forward([id], cache: cache, logits: .last)
        }
        return out
    }

    func testHiddenStatesAndLogitsMatchTransformers() throws {
        eachArchitecture { arch in
            let model = try ModelLoader.loadNetwork(path: fixture(arch).path)
            try checkHiddenStates(model: model, ref: try reference(arch), label: arch)
        }
    }

    func testGreedyContinuationMatchesTransformers() throws {
        eachArchitecture { arch in
            let ref = try reference(arch)
            let model = try ModelLoader.loadNetwork(path: fixture(arch).path)
            let expected = ref.ints("greedy_ids")
            let prompt = ref.ints("greedy_prompt_ids")
            XCTAssertEqual(try greedy(model: model, prompt: prompt, steps: expected.count), expected, arch)
        }
    }

    func testCachedDecodeEqualsUncachedRecompute() throws {
        eachArchitecture { arch in
            let model = try ModelLoader.loadNetwork(path: fixture(arch).path)
            let ids = try reference(arch).ints("input_ids")
            // incremental: prefill half, then one token at a time
            let cache = model.makeCache(capacity: ids.count)
            try model.forward(Array(ids.prefix(ids.count / 2)), cache: cache, logits: .none)
            var last: [Float] = []
            for id in ids.dropFirst(ids.count / 2) { last = Array(try model.forward([id], cache: cache, logits: .last)) }
            // uncached: the whole sequence at once
            let full = Array(try model.forward(ids, cache: model.makeCache(capacity: ids.count), logits: .all))
            let V = model.config.vocabSize
            let d = maxAbsDiff(last, Array(full[(ids.count - 1) * V ..< ids.count * V]))
            XCTAssertLessThanOrEqual(d, tolerance, "\(arch): cached vs uncached last-position logits differ by \(d)")
        }
    }

    func testGGUFVariantsMatchTransformers() throws {
        for name in ["llama2-f32", "llama2-f16", "llama2-q8_0", "qwen2-f16"] {
            let gguf = fixture("\(name).gguf")
            let ref = try Reference(safetensors: fixture("\(name).reference.safetensors"),
                                    json: fixture("\(name).reference.json"))
            let model = try ModelLoader.loadNetwork(path: gguf.path)
            try checkHiddenStates(model: model, ref: ref, label: "\(name).gguf")
            let expected = ref.ints("greedy_ids")
            XCTAssertEqual(try greedy(model: model, prompt: ref.ints("greedy_prompt_ids"), steps: expected.count), expected)
        }
    }

    /// The full path a user takes: tokenizer + chat template + generation, against transformers.
    func testPromptIdsAndGenerationThroughTokenizerMatchTransformers() throws {
        eachArchitecture { arch in
            let ref = try reference(arch)
            let loaded = try ModelLoader.load(path: fixture(arch).path)
            let gen = Generator(loaded)
            if let text = ref.string("prompt_text") {
                let ids = try gen.promptIds(for: text, raw: true)
                XCTAssertEqual(ids, ref.ints("prompt_ids"), "\(arch): raw prompt ids")
                let expected = ref.ints("greedy_text_ids")
                let result = try gen.generate(promptIds: ids, options: GenerationOptions(maxTokens: expected.count))
                XCTAssertEqual(result.tokenIds, Array(expected.prefix(result.tokenIds.count)), "\(arch): generated ids")
                if (ref.json["greedy_text_stopped_on_eos"] as? Bool) == true {
                    XCTAssertEqual(result.finishReason, .eos, "\(arch): should stop on EOS like transformers")
                } else {
                    XCTAssertEqual(result.tokenIds.count, expected.count, "\(arch): stopped early")
                }
            }
            XCTAssertEqual(try gen.promptIds(for: "Hi there", raw: false), ref.ints("chat_prompt_ids"), "\(arch): chat prompt ids")
        }
    }

    /// HF folder -> our GGUF export (Q/K rows permuted for llama.cpp's interleaved RoPE) -> load: same numbers as transformers.
    func testGGUFExportReproducesTransformers() throws {
        for arch in ["llama2", "qwen2", "mistral"] {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-export-\(arch)-\(UUID().uuidString).gguf")
            defer { try? FileManager.default.removeItem(at: out) }
            let net = try ModelLoader.loadNetwork(path: fixture(arch).path)
            try net.writeGGUF(to: out, tokenizer: try GGUFTokenizerExport.metadata(directory: fixture(arch), vocabSize: net.config.vocabSize))
            let model = try ModelLoader.loadNetwork(path: out.path)
            XCTAssertEqual(model.config.ropeStyle, arch == "qwen2" ? .halfRotation : .interleaved)
            let ref = try reference(arch)
            try checkHiddenStates(model: model, ref: ref, label: "\(arch) exported to GGUF")
            // the embedded tokenizer and chat template give transformers' prompt ids
            let gen = Generator(try ModelLoader.load(path: out.path))
            if let text = ref.string("prompt_text") {
                XCTAssertEqual(try gen.promptIds(for: text, raw: true), ref.ints("prompt_ids"), "\(arch) GGUF: raw prompt ids")
            }
            XCTAssertEqual(try gen.promptIds(for: "Hi there", raw: false), ref.ints("chat_prompt_ids"), "\(arch) GGUF: chat prompt ids")
        }
    }
}
