import Foundation
import PersonaFormats
import PersonaGeneration
import PersonaModels
import PersonaTensor
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

    /// Every position's logits of `model` (or the model at `path`) on `ids`, from an empty cache.
    func logits(_ model: TransformerModel, _ ids: [Int]) throws -> [Float] {
        Array(try model.forward(ids, cache: model.makeCache(), logits: .all))
    }
    func logits(_ path: String, _ ids: [Int]) throws -> [Float] { try logits(try ModelLoader.loadNetwork(path: path), ids) }

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

    /// HF folder -> our GGUF export -> load: same numbers as transformers, for every architecture a GGUF can hold
    /// as it is (Q/K rows permuted for llama.cpp's interleaved RoPE in `llama`; Llama-3 RoPE scaling as `rope_freqs`;
    /// Gemma's norms as 1 + w). By hand, Scripts/check_gguf_export_llamacpp.py compares these files with llama.cpp's
    /// own converter's (the same tensors) and runs them in llama.cpp.
    func testGGUFExportReproducesTransformers() throws {
        for arch in ["llama", "llama2", "qwen2", "qwen3", "mistral", "gemma", "smollm3", "olmo2", "qwen2_yarn", "olmo3", "granite", "glm4", "cohere", "cohere2", "ernie4_5", "gpt2", "gpt_neox", "phi", "stablelm", "olmo", "nemotron", "arcee", "ministral3"] {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-export-\(arch)-\(UUID().uuidString).gguf")
            defer { try? FileManager.default.removeItem(at: out) }
            let net = try ModelLoader.loadNetwork(path: fixture(arch).path)
            let caveats = try net.writeGGUF(to: out, tokenizer: try GGUFTokenizerExport.metadata(directory: fixture(arch), vocabSize: net.config.vocabSize))
            XCTAssertEqual(caveats, [], arch)
            let model = try ModelLoader.loadNetwork(path: out.path)
            XCTAssertEqual(model.config.ropeStyle, ["llama", "llama2", "mistral", "smollm3", "granite", "glm4", "cohere", "cohere2", "ernie4_5", "olmo", "arcee", "ministral3"].contains(arch) ? .interleaved : .halfRotation, arch)
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

    /// `convert folder --quantize` reads the export's content directly (no intermediate GGUF): the same file as
    /// quantising the written export, for a permuted (llama) and an offset-norm (gemma) export.
    func testQuantizingExportContentEqualsQuantizingTheWrittenFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("persona-content-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for arch in ["llama", "gemma"] {
            let net = try ModelLoader.loadNetwork(path: fixture(arch).path)
            let (content, _) = try net.ggufContent(name: arch, tokenizer: nil)
            let written = dir.appendingPathComponent("\(arch).gguf")
            try content.write(to: written)
            for type in [GGUFQuantizer.FileType.q4_k_m, .f16] {
                let direct = dir.appendingPathComponent("\(arch)-direct-\(type.rawValue).gguf")
                let viaFile = dir.appendingPathComponent("\(arch)-file-\(type.rawValue).gguf")
                try GGUFQuantizer(fileType: type).quantize(content, to: direct)
                try GGUFQuantizer(fileType: type).quantize(try GGUFFile(url: written), to: viaFile)
                XCTAssertEqual(try Data(contentsOf: direct), try Data(contentsOf: viaFile), "\(arch) \(type.rawValue)")
            }
        }
    }

    /// SmolLM3's NoPE layers: the config's list, or every `no_rope_layer_interval`-th layer when there is none; a
    /// GGUF can only say "every 4th" (llama.cpp's rule), so another list is refused for export, and a model
    /// without them is another model (the reference would not match).
    func testSmolLM3NoRopeLayers() throws {
        let hub = try ModelLoader.loadNetwork(path: fixture("smollm3").path)
        XCTAssertEqual(hub.config.noRopeLayers, [false, false, false, true])
        let ids = try reference("smollm3").ints("input_ids")
        let interval = try ArchitectureFixtures.edited("smollm3") { $0.removeValue(forKey: "no_rope_layers") }
        defer { try? FileManager.default.removeItem(at: interval) }
        let fromInterval = try ModelLoader.loadNetwork(path: interval.path)
        XCTAssertEqual(fromInterval.config.noRopeLayers, hub.config.noRopeLayers)
        XCTAssertEqual(try logits(fromInterval, ids), try logits(hub, ids))
        let everyLayer = try ArchitectureFixtures.edited("smollm3") { $0["no_rope_layers"] = [1, 1, 1, 1] }
        defer { try? FileManager.default.removeItem(at: everyLayer) }
        let withRope = try ModelLoader.loadNetwork(path: everyLayer.path)
        XCTAssertGreaterThan(maxAbsDiff(try logits(withRope, ids), try reference("smollm3").floats("logits").values), 0.1)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-smollm3-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertThrowsError(try withRope.writeGGUF(to: out)) { e in
            XCTAssertTrue("\(e)".contains("no_rope_layers cannot be written"), "\(e)")
        }
        for (bad, message) in [(["no_rope_layers": [1, 1, 0]], "no_rope_layers must be 4 entries of 0 or 1"),
                               (["mlp_bias": true], "unsupported mlp_bias"), (["use_sliding_window": true], "unsupported use_sliding_window")] {
            let dir = try ArchitectureFixtures.edited("smollm3") { c in for (k, v) in bad { c[k] = v } }
            defer { try? FileManager.default.removeItem(at: dir) }
            XCTAssertThrowsError(try ModelLoader.loadNetwork(path: dir.path)) { e in XCTAssertTrue("\(e)".contains(message), "\(e)") }
        }
    }

    /// Phi-3's fused projections (qkv_proj, gate_up_proj) are row ranges of one stored matrix; its GGUF keeps them
    /// fused (attn_qkv, a gate|up ffn_up). llama.cpp runs phi3 files without the sliding window it writes, and so
    /// does our reader: the export says so, and reads back as the folder without its window. LongRoPE factors of the
    /// wrong count are refused by name.
    func testPhi3FusedProjectionsAndGGUF() throws {
        let folder = try ModelLoader.loadNetwork(path: fixture("phi3").path)
        XCTAssertTrue(folder.config.fusedProjections)
        XCTAssertEqual(folder.config.slidingWindow, 6)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-phi3-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        let caveats = try folder.writeGGUF(to: out)
        XCTAssertEqual(caveats.count, 1)
        XCTAssertTrue(caveats.first?.contains("llama.cpp runs phi3 files without it") == true, "\(caveats)")
        let file = try GGUFFile(url: out)
        XCTAssertEqual(file.tensor("blk.0.attn_qkv.weight")?.shape, [folder.config.qDim + 2 * folder.config.kvDim, 64])
        XCTAssertEqual(file.tensor("blk.0.ffn_up.weight")?.shape, [2 * folder.config.intermediateSize, 64])
        XCTAssertNil(file.tensor("blk.0.ffn_gate.weight"))
        let gguf = try ModelLoader.loadNetwork(path: out.path)
        XCTAssertNil(gguf.config.slidingWindow)
        let windowless = try ArchitectureFixtures.edited("phi3") { $0["sliding_window"] = NSNull() }
        defer { try? FileManager.default.removeItem(at: windowless) }
        let ids = try reference("phi3").ints("input_ids")
        let plain = try logits(windowless.path, ids)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(gguf, ids), plain), 1e-5)
        // the window matters over these 16 tokens, so the reference is not matched without it
        XCTAssertGreaterThan(maxAbsDiff(plain, try reference("phi3").floats("logits").values), 0.01)
        let longrope = try ArchitectureFixtures.edited("phi3") {
            $0["rope_scaling"] = ["type": "longrope", "short_factor": [1.0], "long_factor": [2.0]]
        }
        defer { try? FileManager.default.removeItem(at: longrope) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: longrope.path)) { e in
            XCTAssertTrue("\(e)".contains("longrope needs 'short_factor': 8 positive numbers"), "\(e)")
        }
    }

    /// LongRoPE (the `phi3_longrope` fixture, which EngineReferenceTests' every-architecture checks compare with
    /// transformers): short factors and the attention factor sqrt(1 + ln 4 / ln 64); the context stops at the original
    /// 64 positions, past which transformers would switch to the long factors; a GGUF export carries the factors as
    /// llama.cpp's converter writes them and reads back the same.
    func testLongRopeShortFactorsUpToTheOriginalContext() throws {
        let folder = try ModelLoader.loadNetwork(path: fixture("phi3_longrope").path)
        let lr = try XCTUnwrap(folder.config.longRope)
        XCTAssertEqual(lr.originalMaxPositions, 64)
        XCTAssertEqual(lr.attentionFactor, (1 + Foundation.log(4.0) / Foundation.log(64.0)).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(folder.config.maxPositions, 64)
        XCTAssertThrowsError(try folder.forward(Array(repeating: 5, count: 65), cache: folder.makeCache(capacity: 65), logits: .last))
        // without the attention factor (or with the long factors) it is another model
        let ids = try reference("phi3_longrope").ints("input_ids")
        let unscaled = try ArchitectureFixtures.edited("phi3_longrope") { c in
            var s = c["rope_scaling"] as! [String: Any]; s["attention_factor"] = 1.0; c["rope_scaling"] = s
        }
        defer { try? FileManager.default.removeItem(at: unscaled) }
        XCTAssertGreaterThan(maxAbsDiff(try logits(unscaled.path, ids), try logits(folder, ids)), 0.01)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-longrope-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertEqual(try folder.writeGGUF(to: out), [])
        let file = try GGUFFile(url: out)
        XCTAssertEqual(file.tensor("rope_factors_short.weight")?.shape, [8])
        XCTAssertEqual(file.metadata["phi3.rope.scaling.original_context_length"]?.int, 64)
        XCTAssertEqual(file.metadata["phi3.context_length"]?.int, 256, "the whole context, as llama.cpp's converter writes it")
        let gguf = try ModelLoader.loadNetwork(path: out.path)
        // stored as F32, as llama.cpp's converter stores them
        XCTAssertEqual(gguf.config.longRope?.shortFactors.map(Float.init), lr.shortFactors.map(Float.init))
        XCTAssertEqual(gguf.config.longRope?.longFactors.map(Float.init), lr.longFactors.map(Float.init))
        XCTAssertEqual(gguf.config.longRope?.attentionFactor ?? 0, lr.attentionFactor, accuracy: 1e-6)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(gguf, ids), try logits(folder, ids)), 1e-5)
    }

    /// Partial rotary (the `phi4_mini` fixture, which the every-architecture checks compare with transformers): RoPE
    /// on the first 12 of 16 dimensions, LongRoPE factors for those 12; the GGUF export writes rope.dimension_count 12
    /// and 6 factors, as llama.cpp's converter does, and reads back the same. What no reference runs is refused.
    func testPartialRotary() throws {
        let folder = try ModelLoader.loadNetwork(path: fixture("phi4_mini").path)
        XCTAssertEqual(folder.config.partialRotaryDim, 12)
        XCTAssertEqual(folder.config.longRope?.shortFactors.count, 6)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-phi4-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertEqual(try folder.writeGGUF(to: out), [])
        let file = try GGUFFile(url: out)
        XCTAssertEqual(file.metadata["phi3.rope.dimension_count"]?.int, 12)
        XCTAssertEqual(file.tensor("rope_factors_long.weight")?.shape, [6])
        let gguf = try ModelLoader.loadNetwork(path: out.path)
        XCTAssertEqual(gguf.config.partialRotaryDim, 12)
        try checkHiddenStates(model: gguf, ref: try reference("phi4_mini"), label: "phi4_mini exported to GGUF")
        // 16 x 0.7 = 11.2: transformers would turn 11 dimensions, which has no pairs; a Llama block turns the whole head
        for (arch, factor, message) in [("phi4_mini", 0.7, "invalid partial_rotary_factor 0.7"),
                                        ("llama2", 0.5, "unsupported partial_rotary_factor for llama")] {
            let dir = try ArchitectureFixtures.edited(arch) { $0["partial_rotary_factor"] = factor }
            defer { try? FileManager.default.removeItem(at: dir) }
            XCTAssertThrowsError(try ModelLoader.loadNetwork(path: dir.path)) { e in XCTAssertTrue("\(e)".contains(message), "\(e)") }
        }
        let odd = try ggufCopy(of: out, setting: ["phi3.rope.dimension_count": .uint32(13)])
        defer { try? FileManager.default.removeItem(at: odd) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: odd.path)) { e in
            XCTAssertTrue("\(e)".contains("invalid metadata: phi3.rope.dimension_count 13"), "\(e)")
        }
    }

    /// OLMo-2 (the `olmo2` fixture, which the every-architecture checks and the GGUF export check compare with
    /// transformers): post norms only and all-heads q / k norms, as the GGUF's tensors say. OLMo-3 (the `olmo3`
    /// fixture) is the same block with sliding layers, written as olmo2 with a window and a per-layer pattern, which
    /// llama.cpp reads as every 4th layer full when the file gives no list.
    func testOLMo2PostNormsAndOLMo3SlidingLayers() throws {
        let folder = try ModelLoader.loadNetwork(path: fixture("olmo2").path)
        XCTAssertEqual(folder.config.norms, .post)
        XCTAssertTrue(folder.config.qkNormAcrossHeads)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-olmo2-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertEqual(try folder.writeGGUF(to: out), [])
        let file = try GGUFFile(url: out)
        XCTAssertNil(file.tensor("blk.0.attn_norm.weight"))
        XCTAssertNil(file.tensor("blk.0.ffn_norm.weight"))
        XCTAssertEqual(file.tensor("blk.0.attn_q_norm.weight")?.shape, [64])
        XCTAssertEqual(file.tensor("blk.0.attn_k_norm.weight")?.shape, [32])
        XCTAssertEqual(file.tensor("blk.0.post_ffw_norm.weight")?.shape, [64])
        let windowed = try ggufCopy(of: out, setting: ["olmo2.attention.sliding_window": .uint32(4096)])
        defer { try? FileManager.default.removeItem(at: windowed) }
        let w = try ModelLoader.loadNetwork(path: windowed.path).config
        XCTAssertEqual(w.architecture, "olmo3")
        XCTAssertEqual(w.slidingLayers, [true, true, true], "every 4th layer full: none of 3")
        XCTAssertEqual(w.slidingRopeTheta, w.ropeTheta)

        let olmo3 = try ModelLoader.loadNetwork(path: fixture("olmo3").path)
        XCTAssertEqual(olmo3.config.slidingLayers, [true, true, true, false])
        XCTAssertEqual(olmo3.config.slidingWindow, 6)
        XCTAssertEqual(olmo3.config.yarn?.factor, 4)
        let out3 = FileManager.default.temporaryDirectory.appendingPathComponent("persona-olmo3-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out3) }
        XCTAssertEqual(try olmo3.writeGGUF(to: out3), [])
        let meta = try GGUFFile(url: out3).metadata
        XCTAssertEqual(meta["general.architecture"]?.string, "olmo2")
        XCTAssertEqual(meta["olmo2.attention.sliding_window_pattern"]?.array?.compactMap(\.bool), [true, true, true, false])
        // the window and the YaRN on the full layer only both matter over these 16 tokens
        let ids = try reference("olmo3").ints("input_ids")
        let want = try reference("olmo3").floats("logits").values
        for edit in [{ (c: inout [String: Any]) in c["sliding_window"] = NSNull() }, { c in c["rope_scaling"] = NSNull() }] {
            let dir = try ArchitectureFixtures.edited("olmo3", edit: edit)
            defer { try? FileManager.default.removeItem(at: dir) }
            XCTAssertGreaterThan(maxAbsDiff(try logits(dir.path, ids), want), 0.01)
        }
    }

    /// Granite's four multipliers (the `granite` fixture, which the every-architecture checks compare with
    /// transformers): each one moves the logits, and its GGUF carries them as llama.cpp's converter writes them; a
    /// granite file without granite.logit_scale is refused, as llama.cpp refuses it.
    func testGraniteMultipliers() throws {
        let folder = try ModelLoader.loadNetwork(path: fixture("granite").path)
        let c = folder.config
        XCTAssertEqual([c.embedScale, c.attnScale, c.residualScale, c.logitScale], [3, 0.125, 0.5, 2.5])
        let ids = try reference("granite").ints("input_ids")
        let want = try logits(folder, ids)
        for key in ["embedding_multiplier", "attention_multiplier", "residual_multiplier", "logits_scaling"] {
            let dir = try ArchitectureFixtures.edited("granite") { $0.removeValue(forKey: key) }
            defer { try? FileManager.default.removeItem(at: dir) }
            XCTAssertGreaterThan(maxAbsDiff(try logits(dir.path, ids), want), 0.01, key)
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-granite-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertEqual(try folder.writeGGUF(to: out), [])
        let meta = try GGUFFile(url: out).metadata
        XCTAssertEqual(meta["granite.residual_scale"]?.double, 0.5)
        XCTAssertEqual(meta["granite.logit_scale"]?.double, 2.5)
        let bare = try ggufCopy(of: out, dropping: ["granite.logit_scale"])
        defer { try? FileManager.default.removeItem(at: bare) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: bare.path)) { e in
            XCTAssertTrue("\(e)".contains("missing metadata 'granite.logit_scale'"), "\(e)")
        }
    }

    /// Mixtures of experts (the `qwen3_moe` and `mixtral` fixtures, which the every-architecture checks compare with
    /// transformers; by hand, Scripts/check_gguf_export_llamacpp.py runs llama.cpp's own GGUFs of them): the stacked
    /// layout transformers 5 can save is the same model; renormalising the chosen weights matters; mlp_only_layers
    /// keep a dense MLP; export refuses rather than write a dense model.
    /// Qwen2-MoE's shared expert (the `qwen2_moe` fixture matches transformers with the every-architecture tests) from
    /// a GGUF laid out as llama.cpp's qwen2moe (stacked ffn_*_exps, ffn_*_shexp, the shared gate as [hidden]): the
    /// same logits. llama.cpp's own converter's file of the fixture is checked by hand (check_gguf_export_llamacpp.py).
    func testQwen2MoESharedExpertFromGGUF() throws {
        let src = try SafetensorsFile(url: fixture("qwen2_moe").appendingPathComponent("model.safetensors"))
        func t(_ n: String) -> TensorInfo { src.tensor(n)! }
        func bytes(_ n: String) -> Data { Data(t(n).bytes) }
        var w = GGUFWriter()
        w.set("general.architecture", .string("qwen2moe"))
        for (k, v) in [("context_length", 256), ("embedding_length", 64), ("feed_forward_length", 128), ("block_count", 2),
                       ("attention.head_count", 4), ("attention.head_count_kv", 2), ("expert_count", 4), ("expert_used_count", 2),
                       ("expert_feed_forward_length", 32), ("expert_shared_feed_forward_length", 48), ("vocab_size", 384)] {
            w.set("qwen2moe.\(k)", .uint32(UInt32(v)))
        }
        w.set("qwen2moe.attention.layer_norm_rms_epsilon", .float32(1e-6))
        w.set("qwen2moe.rope.freq_base", .float32(1e6))
        func add(_ name: String, _ from: String) throws { try w.addTensor(name: name, dtype: t(from).dtype, shape: t(from).shape, data: bytes(from)) }
        try add("token_embd.weight", "model.embed_tokens.weight")
        try add("output_norm.weight", "model.norm.weight")
        try add("output.weight", "lm_head.weight")
        for l in 0..<2 {
            let p = "model.layers.\(l).", b = "blk.\(l)."
            for (g, h) in [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"), ("attn_q", "self_attn.q_proj"),
                           ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                           ("ffn_gate_inp", "mlp.gate"), ("ffn_gate_shexp", "mlp.shared_expert.gate_proj"),
                           ("ffn_up_shexp", "mlp.shared_expert.up_proj"), ("ffn_down_shexp", "mlp.shared_expert.down_proj")] {
                try add(b + g + ".weight", p + h + ".weight")
            }
            for q in ["q", "k", "v"] { try add(b + "attn_\(q).bias", p + "self_attn.\(q)_proj.bias") }
            let gate = t(p + "mlp.shared_expert_gate.weight")
            try w.addTensor(name: b + "ffn_gate_inp_shexp.weight", dtype: gate.dtype, shape: [64], data: Data(gate.bytes))
            for (g, h, shape) in [("ffn_gate_exps", "gate_proj", [4, 32, 64]), ("ffn_up_exps", "up_proj", [4, 32, 64]), ("ffn_down_exps", "down_proj", [4, 64, 32])] {
                let data = (0..<4).reduce(Data()) { $0 + bytes(p + "mlp.experts.\($1).\(h).weight") }
                try w.addTensor(name: b + g + ".weight", dtype: .bf16, shape: shape, data: data)
            }
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-qwen2moe-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        try w.write(to: out)
        let model = try ModelLoader.loadNetwork(path: out.path)
        XCTAssertEqual(model.config.moe?.sharedIntermediateSize, 48)
        let ref = try reference("qwen2_moe")
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(model, ref.ints("input_ids")), try ref.floats("logits").values), 1e-4)
    }

    func testMixtureOfExperts() throws {
        let folder = try ModelLoader.loadNetwork(path: fixture("qwen3_moe").path)
        let moe = try XCTUnwrap(folder.config.moe)
        XCTAssertEqual([moe.experts, moe.perToken, moe.intermediateSize], [4, 2, 32])
        XCTAssertTrue(moe.normalizeTopK)
        let ids = try reference("qwen3_moe").ints("input_ids")
        let want = try logits(folder, ids)
        // experts stacked as gate_up_proj [E, 2F, D] and down_proj [E, D, F]
        let dir = try ArchitectureFixtures.edited("qwen3_moe") { _ in }
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try SafetensorsFile(url: fixture("qwen3_moe").appendingPathComponent("model.safetensors"))
        var tensors: [(name: String, dtype: DType, shape: [Int], data: Data)] = []
        func bytes(_ n: String) -> Data { let t = file.tensor(n)!; return Data(bytes: t.data, count: t.byteCount) }
        for n in file.tensorNames where !n.contains(".experts.") {
            let t = file.tensor(n)!
            tensors.append((n, t.dtype, t.shape, bytes(n)))
        }
        for l in 0..<2 {
            let p = "model.layers.\(l).mlp.experts."
            var gateUp = Data(), down = Data()
            for e in 0..<4 {
                gateUp += bytes(p + "\(e).gate_proj.weight") + bytes(p + "\(e).up_proj.weight")
                down += bytes(p + "\(e).down_proj.weight")
            }
            tensors.append((p + "gate_up_proj", .bf16, [4, 64, 64], gateUp))
            tensors.append((p + "down_proj", .bf16, [4, 64, 32], down))
        }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(try logits(dir.path, ids), want)
        // without renormalising, another model
        let raw = try ArchitectureFixtures.edited("qwen3_moe") { $0["norm_topk_prob"] = false }
        defer { try? FileManager.default.removeItem(at: raw) }
        XCTAssertGreaterThan(maxAbsDiff(try logits(raw.path, ids), want), 0.01)
        // a dense layer wants its dense MLP, named as the file would have it
        let dense = try ArchitectureFixtures.edited("qwen3_moe") { $0["mlp_only_layers"] = [1] }
        defer { try? FileManager.default.removeItem(at: dense) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: dense.path)) { e in
            XCTAssertTrue("\(e)".contains("missing tensor 'model.layers.1.mlp.gate_proj.weight'"), "\(e)")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-moe-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: fixture("mixtral").path).writeGGUF(to: out)) { e in
            XCTAssertTrue("\(e)".contains("a mixture of experts (4 experts) cannot be written"), "\(e)")
        }
    }

    /// Mistral Small 3.x's folders are Mistral3ForConditionalGeneration: the text model's config under text_config and
    /// its tensors under language_model (Scripts/make_multimodal_fixtures.py wraps the `mistral` fixture with a tiny
    /// Pixtral tower, in the Hub's layout; transformers' Mistral3ForConditionalGeneration gives its reference). Read as
    /// the language model, with its own untied head.
    func testMistral3MultimodalFolderIsItsLanguageModel() throws {
        let loaded = try ModelLoader.load(path: fixture("mistral3_multimodal").path)
        XCTAssertEqual(loaded.config.architecture, "mistral")
        XCTAssertFalse(loaded.config.tieWordEmbeddings)
        try checkHiddenStates(model: loaded.model, ref: try reference("mistral3_multimodal"), label: "mistral3_multimodal")
        XCTAssertNotNil(loaded.tokenizer.chatTemplate)
    }

    /// GLM-4 (the `glm4` fixture, which the every-architecture checks compare with transformers): RoPE on the first
    /// half of each head in interleaved pairs, 0.5 when the config names no factor (transformers' default), and its
    /// own names for the four norms; turning the whole head is another model.
    func testGLM4HalfRotaryInterleaved() throws {
        let c = try ModelLoader.loadNetwork(path: fixture("glm4").path).config
        XCTAssertEqual(c.partialRotaryDim, 8)
        XCTAssertEqual(c.ropeStyle, .interleaved)
        XCTAssertTrue(c.fusedGateUp && c.attentionBias && c.norms == .sandwich)
        let want = try reference("glm4").floats("logits").values
        let ids = try reference("glm4").ints("input_ids")
        let unnamed = try ArchitectureFixtures.edited("glm4") { $0.removeValue(forKey: "partial_rotary_factor") }
        defer { try? FileManager.default.removeItem(at: unnamed) }
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(unnamed.path, ids), want), tolerance)
        let whole = try ArchitectureFixtures.edited("glm4") { $0["partial_rotary_factor"] = 1.0 }
        defer { try? FileManager.default.removeItem(at: whole) }
        XCTAssertGreaterThan(maxAbsDiff(try logits(whole.path, ids), want), 0.01)
    }

    /// Cohere and Cohere2 (the `cohere` and `cohere2` fixtures, which the every-architecture checks compare with
    /// transformers): LayerNorms in a parallel block, logits times logit_scale; Cohere2 turns only its sliding layers.
    func testCohereParallelLayerNorm() throws {
        let c = try ModelLoader.loadNetwork(path: fixture("cohere2").path).config
        XCTAssertTrue(c.layerNorm && c.parallelBlock)
        XCTAssertEqual(c.slidingLayers, [true, true, true, false])
        XCTAssertEqual(c.noRopeLayers, [false, false, false, true])
        XCTAssertEqual(c.logitScale, 4)
        let ids = try reference("cohere2").ints("input_ids")
        let want = try reference("cohere2").floats("logits").values
        // a full layer that turned, or logits left unscaled, are other models
        for edit in [{ (c: inout [String: Any]) in c["layer_types"] = Array(repeating: "sliding_attention", count: 4) },
                     { c in c["logit_scale"] = 1.0 }] {
            let dir = try ArchitectureFixtures.edited("cohere2", edit: edit)
            defer { try? FileManager.default.removeItem(at: dir) }
            XCTAssertGreaterThan(maxAbsDiff(try logits(dir.path, ids), want), 0.01)
        }
    }

    /// EXAONE 4.0 (the `exaone4` fixture, which the every-architecture checks compare with transformers): its full
    /// layer turns with no RoPE when there is a window; without one every layer turns, and only that form exports,
    /// since llama.cpp reads a window only in a 64-layer exaone4 file.
    func testExaone4WindowAndNoRope() throws {
        let c = try ModelLoader.loadNetwork(path: fixture("exaone4").path).config
        XCTAssertEqual(c.norms, .post)
        XCTAssertEqual(c.noRopeLayers, [false, false, false, true])
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-exaone4-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: fixture("exaone4").path).writeGGUF(to: out)) { e in
            XCTAssertTrue("\(e)".contains("llama.cpp reads a window only in a 64-layer exaone4 file"), "\(e)")
        }
        let plain = try ArchitectureFixtures.edited("exaone4") { c in
            c["sliding_window"] = NSNull()
            c["layer_types"] = Array(repeating: "full_attention", count: 4)   // as EXAONE-4.0-1.2B's config
        }
        defer { try? FileManager.default.removeItem(at: plain) }
        let folder = try ModelLoader.loadNetwork(path: plain.path)
        XCTAssertEqual(folder.config.noRopeLayers, [])
        XCTAssertEqual(try folder.writeGGUF(to: out), [])
        let ids = try reference("exaone4").ints("input_ids")
        let windowless = try logits(folder, ids)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(out.path, ids), windowless), 1e-5)
        XCTAssertGreaterThan(maxAbsDiff(windowless, try reference("exaone4").floats("logits").values), 0.01)
    }

    /// A Mistral sliding window has no GGUF key (llama.cpp's converter drops it too): the file is written, and the
    /// caveat says what differs.
    func testMistralSlidingWindowIsACaveat() throws {
        let dir = try ArchitectureFixtures.edited("mistral") { $0["sliding_window"] = 4096 }
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m.gguf")
        let caveats = try ModelLoader.loadNetwork(path: dir.path).writeGGUF(to: out)
        XCTAssertEqual(caveats.count, 1)
        XCTAssertTrue(caveats.first?.contains("sliding_window 4096 is not written") == true, "\(caveats)")
        XCTAssertNil(try ModelLoader.loadNetwork(path: out.path).config.slidingWindow)
    }

    /// Gemma-2: GGUF has no query_pre_attn_scalar or per-layer window list (llama.cpp infers both from the size), so
    /// the fixture (scalar 24, head_dim 16) is refused with the reason rather than written as another model. With
    /// the scalar llama.cpp assumes, the export (sandwich norms, soft-caps, the window of 6 on even layers) computes
    /// what the folder computes over 16 tokens.
    func testGemma2GGUFExport() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-export-gemma2-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        let net = try ModelLoader.loadNetwork(path: fixture("gemma2").path)
        XCTAssertThrowsError(try net.writeGGUF(to: out)) { e in
            XCTAssertTrue("\(e)".contains("query_pre_attn_scalar 24 cannot be written") && "\(e)".contains("assumes 16"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // the same folder with query_pre_attn_scalar = head_dim
        let dir = try ArchitectureFixtures.edited("gemma2") { config in
            XCTAssertEqual(config["head_dim"] as? Int, 16)
            config["query_pre_attn_scalar"] = 16
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = try ModelLoader.loadNetwork(path: dir.path)
        XCTAssertEqual(try folder.writeGGUF(to: out), [])
        let gguf = try ModelLoader.loadNetwork(path: out.path)
        XCTAssertEqual(gguf.config.slidingWindow, 6)
        XCTAssertEqual(gguf.config.slidingLayers, [true, false, true])
        XCTAssertEqual(gguf.config.attnLogitSoftcap, folder.config.attnLogitSoftcap)
        XCTAssertEqual(gguf.config.finalLogitSoftcap, folder.config.finalLogitSoftcap)
        let ids = try reference("gemma2").ints("input_ids")
        XCTAssertGreaterThan(ids.count, 6)
        let a = try HiddenStateTrace.run(model: folder, tokens: ids), b = try HiddenStateTrace.run(model: gguf, tokens: ids)
        let d = maxAbsDiff(a.logits, b.logits)
        XCTAssertLessThanOrEqual(d, tolerance, "gemma2 folder vs its GGUF: logits max |diff| \(d)")
    }
}
