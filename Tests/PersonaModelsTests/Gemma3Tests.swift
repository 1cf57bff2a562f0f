import Foundation
import PersonaFormats
import PersonaModels
import PersonaTensor
import XCTest
@testable import PersonaTestSupport

/// Gemma-3 beyond what every architecture is checked for against transformers (EngineReferenceTests runs the
/// `gemma3` fixture too: 6 layers, the 6th full attention, RoPE base 1e4 on the sliding layers and 1e6 x linear 8
/// on the full one, the Hub's config layout): the transformers 5 config layout, and GGUF against llama.cpp, which
/// reads a gemma3 file by rules of its own (every 6th layer full, sliding RoPE base 1e4, query scale from the size).
final class Gemma3Tests: XCTestCase {
    func logits(_ net: TransformerModel, _ ids: [Int]) throws -> [Float] {
        Array(try net.forward(ids, cache: net.makeCache(), logits: .all))
    }

    func folder(_ edit: @escaping (inout [String: Any]) -> Void) throws -> URL {
        let dir = try ArchitectureFixtures.edited("gemma3", edit: edit)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    var ids: [Int] { get throws { try ArchitectureFixtures.reference("gemma3").ints("input_ids") } }

    /// `src` rewritten without the metadata keys `dropping` (removed after the test).
    func copy(_ src: URL, dropping: Set<String>) throws -> URL {
        let url = try ggufCopy(of: src, dropping: dropping)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// transformers 5 writes `rope_parameters` per layer type and `layer_types`; the Hub's checkpoints have
    /// rope_theta / rope_scaling / rope_local_base_freq / sliding_window_pattern. Both are the same model.
    func testTransformers5ConfigLayoutIsTheSameModel() throws {
        let hub = try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("gemma3").path)
        XCTAssertEqual(hub.config.slidingLayers, [true, true, true, true, true, false])
        XCTAssertEqual(hub.config.slidingRopeTheta, 10000)
        XCTAssertEqual(hub.config.ropeTheta, 1_000_000)
        XCTAssertEqual(hub.config.ropeLinearFactor, 8)
        XCTAssertEqual(hub.config.attnScale, 1 / Float(24).squareRoot(), accuracy: 1e-7)
        let dir = try folder { c in
            for k in ["rope_theta", "rope_scaling", "rope_local_base_freq", "sliding_window_pattern"] { c.removeValue(forKey: k) }
            c["layer_types"] = ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"]
            c["rope_parameters"] = ["sliding_attention": ["rope_type": "default", "rope_theta": 10000.0],
                                    "full_attention": ["rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0]]
        }
        let v5 = try ModelLoader.loadNetwork(path: dir.path)
        XCTAssertEqual(v5.config.slidingLayers, hub.config.slidingLayers)
        XCTAssertEqual(try logits(v5, try ids), try logits(hub, try ids))
        // any layer_types: the GGUF export writes them as a list, which llama.cpp reads first
        let mixed = [true, false, true, true, false, true]
        let custom = try ModelLoader.loadNetwork(path: try folder { c in
            c["query_pre_attn_scalar"] = 16
            c["layer_types"] = mixed.map { $0 ? "sliding_attention" : "full_attention" }
        }.path)
        XCTAssertEqual(custom.config.slidingLayers, mixed)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-gemma3-\(UUID().uuidString).gguf")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        XCTAssertEqual(try custom.writeGGUF(to: out), [])
        let gguf = try ModelLoader.loadNetwork(path: out.path)
        XCTAssertEqual(gguf.config.slidingLayers, mixed)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(gguf, try ids), try logits(custom, try ids)), 1e-5)
        // a scaling on the sliding layers is not something this model runs: refused, not ignored
        let scaled = try folder { c in
            c["rope_parameters"] = ["sliding_attention": ["rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0],
                                    "full_attention": ["rope_type": "default", "rope_theta": 1_000_000.0]]
        }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: scaled.path)) { e in
            XCTAssertTrue("\(e)".contains("rope_parameters.sliding_attention.rope_type 'linear'"), "\(e)")
        }
    }

    /// A copy of the multimodal fixture with its tensors renamed by `rename` (nil drops one) and its config edited.
    func multimodalCopy(rename: (String) -> String? = { $0 }, edit: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
        let dir = try ArchitectureFixtures.edited("gemma3_multimodal", edit: edit)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = try SafetensorsFile(url: ArchitectureFixtures.url("gemma3_multimodal").appendingPathComponent("model.safetensors"))
        let tensors = file.tensorNames.compactMap { n -> (name: String, dtype: DType, shape: [Int], data: Data)? in
            let t = file.tensor(n)!
            return rename(n).map { ($0, t.dtype, t.shape, Data(bytes: t.data, count: t.byteCount)) }
        }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }

    /// The Hub's multimodal Gemma-3 folders (4B and up; Scripts/make_multimodal_fixtures.py writes one with the
    /// gemma3 fixture's language model and a tiny vision tower): a sparse text_config that leaves the rest to
    /// Gemma3TextConfig's defaults, eos ids at the top level, tensors under language_model.model. Read as the
    /// language model, it gives transformers' Gemma3ForConditionalGeneration hidden states and logits on text.
    func testMultimodalCheckpointIsItsLanguageModel() throws {
        let url = ArchitectureFixtures.url("gemma3_multimodal")
        let loaded = try ModelLoader.load(path: url.path)
        let c = loaded.config
        XCTAssertEqual(c.architecture, "gemma3")
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.slidingRopeTheta, 10000)
        XCTAssertEqual(c.slidingLayers, [true, true, true, true, true, false])
        XCTAssertEqual(c.eosTokenIds, [1, 5], "the wrapper's top-level eos_token_id")
        let ref = try ArchitectureFixtures.reference("gemma3_multimodal")
        let ids = ref.ints("input_ids")
        let trace = try HiddenStateTrace.run(model: loaded.model, tokens: ids)
        for (i, h) in trace.hiddenStates.enumerated() {
            let d = maxAbsDiff(h, try ref.floats("hidden_states.\(i)").values)
            XCTAssertLessThanOrEqual(d, 1e-4, "hidden_states.\(i)")
        }
        XCTAssertLessThanOrEqual(maxAbsDiff(trace.logits, try ref.floats("logits").values), 1e-4)
        XCTAssertNotNil(loaded.tokenizer.chatTemplate)

        // transformers 5 saves the same model as model.language_model.* and model.vision_tower.*
        let v5 = try multimodalCopy(rename: { n in
            for (old, new) in [("language_model.model.", "model.language_model."), ("vision_tower.vision_model.", "model.vision_tower."),
                               ("multi_modal_projector.", "model.multi_modal_projector.")] where n.hasPrefix(old) {
                return new + n.dropFirst(old.count)
            }
            return n
        })
        XCTAssertEqual(try logits(try ModelLoader.loadNetwork(path: v5.path), ids), try logits(loaded.model, ids))

        // a tensor of the language model missing is named as the file has it; an embedding model is refused
        let broken = try multimodalCopy(rename: { $0 == "language_model.model.layers.2.mlp.up_proj.weight" ? nil : $0 })
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: broken.path)) { e in
            XCTAssertTrue("\(e)".contains("missing tensor 'language_model.model.layers.2.mlp.up_proj.weight'"), "\(e)")
        }
        let bidirectional = try multimodalCopy(edit: { c in
            var text = c["text_config"] as! [String: Any]
            text["use_bidirectional_attention"] = true
            c["text_config"] = text
        })
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: bidirectional.path)) { e in
            XCTAssertTrue("\(e)".contains("use_bidirectional_attention"), "\(e)")
        }
    }

    /// llama.cpp on a GGUF of the fixture written by Scripts/make_llamacpp_gemma3_logits.py (query_pre_attn_scalar
    /// = head_dim, what llama.cpp assumes): the folder with that scalar, and our own GGUF export of it, give its logits.
    /// Not to f32 rounding: ggml's f32 GELU rounds its input to f16 and reads the result from an f16 table
    /// (GGML_GELU_FP16), a relative error up to about 2^-11 on every activation; measured here, max 2.4e-3 and RMS
    /// 4.7e-4 over logits of magnitude up to 4.6, hence the bounds 5e-3 and 1e-3. Every way of reading the file
    /// differently from llama.cpp (the sliding layers' RoPE base, which layers slide, the full layer's linear
    /// scaling, the window itself) moves the logits by 0.4 or more, so the bounds tell them apart.
    func testGGUFMatchesLlamaCpp() throws {
        let st = try SafetensorsFile(url: TestPaths.fixtures.appendingPathComponent("gemma3.llamacpp.safetensors"))
        let t = try XCTUnwrap(st.tensor("logits"))
        let expected = Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Float.self), count: t.elementCount))
        let ids = try self.ids
        XCTAssertEqual(st.metadata["input_ids"], ids.map(String.init).joined(separator: ","))
        func check(_ got: [Float], _ what: String) {
            let d = zip(got, expected).map { $0 - $1 }
            XCTAssertLessThanOrEqual(d.map(abs).max()!, 5e-3, "\(what): max |diff|")
            XCTAssertLessThanOrEqual((d.map { $0 * $0 }.reduce(0, +) / Float(d.count)).squareRoot(), 1e-3, "\(what): RMS")
        }

        let fixture = try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("gemma3").path)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-gemma3-\(UUID().uuidString).gguf")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        XCTAssertThrowsError(try fixture.writeGGUF(to: out)) { e in
            XCTAssertTrue("\(e)".contains("query_pre_attn_scalar 24 cannot be written") && "\(e)".contains("assumes 16"), "\(e)")
        }

        let net = try ModelLoader.loadNetwork(path: try folder { $0["query_pre_attn_scalar"] = 16 }.path)
        check(try logits(net, ids), "folder")
        XCTAssertEqual(try net.writeGGUF(to: out), [])
        let gguf = try ModelLoader.loadNetwork(path: out.path)
        XCTAssertEqual(gguf.config.architecture, "gemma3")
        XCTAssertEqual(gguf.config.slidingLayers, [true, true, true, true, true, false])
        XCTAssertEqual(gguf.config.slidingWindow, 6)
        XCTAssertEqual(gguf.config.slidingRopeTheta, 10000)
        XCTAssertEqual(gguf.config.ropeLinearFactor, 8)
        check(try logits(gguf, ids), "our GGUF export")
        // llama.cpp's converter writes neither the pattern nor the sliding base: its defaults must be ours
        let bare = try copy(out, dropping: ["gemma3.attention.sliding_window_pattern", "gemma3.rope.freq_base_swa"])
        let defaults = try ModelLoader.loadNetwork(path: bare.path)
        XCTAssertEqual(defaults.config.slidingLayers, [true, true, true, true, true, false])
        XCTAssertEqual(defaults.config.slidingRopeTheta, 10000)
        check(try logits(defaults, ids), "GGUF without pattern and sliding base")
        // without a window no layer slides, whatever the pattern
        let windowless = try ModelLoader.loadNetwork(path: try copy(out, dropping: ["gemma3.attention.sliding_window"]).path)
        XCTAssertEqual(windowless.config.slidingLayers, Array(repeating: false, count: 6))
        XCTAssertNil(windowless.config.slidingWindow)

        let misreadings: [(String, (inout [String: Any]) -> Void)] = [
            ("sliding layers' RoPE base 1e6", { $0["rope_local_base_freq"] = 1_000_000.0 }),
            ("every layer sliding", { $0["sliding_window_pattern"] = 7 }),
            ("no linear scaling", { $0["rope_scaling"] = NSNull() }),
            ("no window", { $0["sliding_window"] = NSNull() }),
            ("query_pre_attn_scalar 24", { $0["query_pre_attn_scalar"] = 24 }),
        ]
        for (what, edit) in misreadings {
            let other = try ModelLoader.loadNetwork(path: try folder { c in c["query_pre_attn_scalar"] = 16; edit(&c) }.path)
            XCTAssertGreaterThan(maxAbsDiff(try logits(other, ids), expected), 0.2, what)
        }
    }
}
