import Foundation
import PersonaFormats
import PersonaModels
import PersonaTensor
import XCTest
@testable import PersonaTestSupport

/// GPT-2, GPT-NeoX (Pythia), Phi-2, StableLM, OLMo-1, StarCoder2 and Nemotron: their fixtures, which the
/// every-architecture checks compare with transformers (hidden states, logits, greedy ids, cached decode, GGUF export). These are their checkpoint layouts and
/// switches beyond what those fixtures hold.
final class ClassicModelTests: XCTestCase {
    func reference(_ name: String) throws -> Reference { try ArchitectureFixtures.reference(name) }

    func logits(_ path: String, _ ids: [Int]) throws -> [Float] {
        let model = try ModelLoader.loadNetwork(path: path)
        return Array(try model.forward(ids, cache: model.makeCache(), logits: .all))
    }

    /// The fixture `arch` copied with its model.safetensors rewritten: each tensor renamed by `rename` (nil drops
    /// it), `extra` tensors added.
    func rewritten(_ arch: String, rename: (String) -> String?, extra: [(String, [Int])] = [],
                   config: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
        let dir = try ArchitectureFixtures.edited(arch, edit: config)
        let file = dir.appendingPathComponent("model.safetensors")
        let src = try SafetensorsFile(url: file)
        var tensors: [(name: String, dtype: DType, shape: [Int], data: Data)] = []
        for n in src.tensorNames {
            guard let to = rename(n) else { continue }
            let t = src.tensor(n)!
            tensors.append((to, t.dtype, t.shape, Data(t.bytes)))
        }
        for (n, shape) in extra { tensors.append((n, .f32, shape, Data(count: 4 * shape.reduce(1, *)))) }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: file)
        return dir
    }

    /// openai-community/gpt2's own files name tensors without `transformer.` and keep the attention-mask buffers:
    /// the same model. A tensor nothing reads is named as the file has it.
    func testGPT2HubLayout() throws {
        let ids = try reference("gpt2").ints("input_ids")
        let want = try reference("gpt2").floats("logits").values
        let hub = try rewritten("gpt2", rename: { String($0.dropFirst("transformer.".count)) },
                                extra: [("h.0.attn.bias", [1, 1, 4, 4]), ("h.1.attn.masked_bias", [])])
        defer { try? FileManager.default.removeItem(at: hub) }
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(hub.path, ids), want), 1e-4)

        let odd = try rewritten("gpt2", rename: { $0 }, extra: [("transformer.h.0.attn.q_scale", [4])])
        defer { try? FileManager.default.removeItem(at: odd) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: odd.path)) { e in
            XCTAssertTrue("\(e)".contains("unexpected tensor 'transformer.h.0.attn.q_scale'"), "\(e)")
        }
        let missing = try rewritten("gpt2", rename: { $0.hasSuffix("h.1.mlp.c_fc.bias") ? nil : $0 })
        defer { try? FileManager.default.removeItem(at: missing) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: missing.path)) { e in
            XCTAssertTrue("\(e)".contains("missing tensor 'transformer.h.1.mlp.c_fc.bias'"), "\(e)")
        }
        // what GPT-2's config cannot mean here is refused by name
        let scaled = try ArchitectureFixtures.edited("gpt2") { $0["scale_attn_by_inverse_layer_idx"] = true }
        defer { try? FileManager.default.removeItem(at: scaled) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: scaled.path)) { e in
            XCTAssertTrue("\(e)".contains("scale_attn_by_inverse_layer_idx"), "\(e)")
        }
    }

    /// GPT-NeoX's sequential block (use_parallel_residual false) against transformers' logits of the same weights
    /// (reference `logits_sequential`), from the folder and through a GGUF export, which carries the flag; a
    /// transformers-5-style head name reads the same; a GGUF without the flag is refused, as llama.cpp refuses it.
    func testGPTNeoXSequentialBlockAndHeadName() throws {
        let ids = try reference("gpt_neox").ints("input_ids")
        let parallel = try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("gpt_neox").path).config
        XCTAssertTrue(parallel.parallelResidual)
        XCTAssertEqual(parallel.ropeDim, 4)
        let want = try reference("gpt_neox").floats("logits_sequential").values
        let dir = try ArchitectureFixtures.edited("gpt_neox") { $0["use_parallel_residual"] = false }
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(dir.path, ids), want), 1e-4)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-neox-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        try ModelLoader.loadNetwork(path: dir.path).writeGGUF(to: out)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(out.path, ids), want), 1e-4)

        let noFlag = try ggufCopy(of: out, dropping: ["gptneox.use_parallel_residual"])
        defer { try? FileManager.default.removeItem(at: noFlag) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: noFlag.path)) { e in
            XCTAssertTrue("\(e)".contains("gptneox.use_parallel_residual"), "\(e)")
        }

        let lmHead = try rewritten("gpt_neox", rename: { $0 == "embed_out.weight" ? "lm_head.weight" : $0 })
        defer { try? FileManager.default.removeItem(at: lmHead) }
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(lmHead.path, ids), try reference("gpt_neox").floats("logits").values), 1e-4)
    }

    /// Phi-2 GGUFs made from the original checkpoints keep q, k, v as one attn_qkv (and one bias), which llama.cpp
    /// reads as well as the converter's separate ones: the same model.
    func testPhiGGUFWithFusedQKV() throws {
        let ids = try reference("phi").ints("input_ids")
        let want = try reference("phi").floats("logits").values
        let split = FileManager.default.temporaryDirectory.appendingPathComponent("persona-phi-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: split) }
        try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("phi").path).writeGGUF(to: split)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(split.path, ids), want), 1e-4)

        let file = try GGUFFile(url: split)
        var w = GGUFWriter()
        for k in file.metadataKeys { w.set(k, file.metadata[k]!) }
        for n in file.tensorNamesInFileOrder {
            let t = file.tensor(n)!
            if n.contains(".attn_k.") || n.contains(".attn_v.") { continue }
            if n.contains(".attn_q.") {
                let parts = ["attn_q", "attn_k", "attn_v"].map { file.tensor(n.replacingOccurrences(of: "attn_q", with: $0))! }
                let data = parts.reduce(Data()) { $0 + Data($1.bytes) }
                let shape = t.shape.count == 2 ? [parts.reduce(0) { $0 + $1.shape[0] }, t.shape[1]] : [parts.reduce(0) { $0 + $1.shape[0] }]
                try w.addTensor(name: n.replacingOccurrences(of: "attn_q", with: "attn_qkv"), dtype: t.dtype, shape: shape, data: data)
                continue
            }
            try w.addTensor(name: n, dtype: t.dtype, shape: t.shape, data: Data(t.bytes))
        }
        let fused = FileManager.default.temporaryDirectory.appendingPathComponent("persona-phi-qkv-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: fused) }
        try w.write(to: fused)
        XCTAssertNotNil(try GGUFFile(url: fused).tensor("blk.1.attn_qkv.bias"))
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(fused.path, ids), want), 1e-4)
    }

    /// StableLM's parallel form (use_parallel_residual, as StableLM-2-12B): the MLP reads the input norm and the
    /// checkpoint has no post_attention_layernorm; against transformers' logits of the same weights (reference
    /// `logits_parallel`), from the folder and through GGUF, where llama.cpp tells it by the missing ffn_norm.
    func testStableLMParallelBlock() throws {
        let ids = try reference("stablelm").ints("input_ids")
        let want = try reference("stablelm").floats("logits_parallel").values
        let dir = try rewritten("stablelm", rename: { $0.contains("post_attention_layernorm") ? nil : $0 },
                                config: { $0["use_parallel_residual"] = true })
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertTrue(try ModelLoader.loadNetwork(path: dir.path).config.parallelBlock)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(dir.path, ids), want), 1e-4)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-stablelm-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        try ModelLoader.loadNetwork(path: dir.path).writeGGUF(to: out)
        XCTAssertNil(try GGUFFile(url: out).tensor("blk.0.ffn_norm.weight"))
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(out.path, ids), want), 1e-4)
    }

    /// StarCoder2's sliding window (6 here, 4096 in the real ones) cannot be written: GGUF starcoder2 has none and
    /// llama.cpp reads none. The export says so, and is the same model up to the window.
    func testStarCoder2ExportWithoutItsWindow() throws {
        let ref = try reference("starcoder2")
        let ids = ref.ints("input_ids"), want = try ref.floats("logits").values
        let net = try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("starcoder2").path)
        XCTAssertEqual(net.config.slidingWindow, 6)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-starcoder2-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        let caveats = try net.writeGGUF(to: out)
        XCTAssertEqual(caveats.count, 1)
        XCTAssertTrue(caveats.first?.contains("sliding_window 6 is not written") == true, "\(caveats)")
        let got = try logits(out.path, ids), V = net.config.vocabSize
        XCTAssertNil(try ModelLoader.loadNetwork(path: out.path).config.slidingWindow)
        XCTAssertLessThanOrEqual(maxAbsDiff(Array(got[0 ..< 6 * V]), Array(want[0 ..< 6 * V])), 1e-4)
        XCTAssertGreaterThan(maxAbsDiff(Array(got[6 * V ..< ids.count * V]), Array(want[6 * V ..< ids.count * V])), 0.01)
    }

    /// OLMo-1's clip_qkv clamps (the fixture's 1.0 is checked to matter by its script) and goes into GGUF as
    /// attention.clamp_kqv, as llama.cpp's converter writes it; its norms have no weights in either.
    func testOLMoClipAndNonParametricNorms() throws {
        let ref = try reference("olmo")
        let net = try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("olmo").path)
        XCTAssertEqual(net.config.clipQKV, 1)
        XCTAssertFalse(net.config.normWeights)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-olmo-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        try net.writeGGUF(to: out)
        let file = try GGUFFile(url: out)
        XCTAssertEqual(file.metadata["olmo.attention.clamp_kqv"]?.double, 1)
        XCTAssertFalse(file.tensorNamesInFileOrder.contains { $0.contains("norm") })
        let unclipped = try ArchitectureFixtures.edited("olmo") { $0["clip_qkv"] = NSNull() }
        defer { try? FileManager.default.removeItem(at: unclipped) }
        XCTAssertNil(try ModelLoader.loadNetwork(path: unclipped.path).config.clipQKV)
        XCTAssertGreaterThan(maxAbsDiff(try logits(unclipped.path, ref.ints("input_ids")), try ref.floats("logits").values), 0.05)
    }

    /// Seed-OSS with an attention-output bias (the fixture's; Seed-OSS-36B has none) matches transformers, but llama.cpp's
    /// seed_oss reads no such tensor, so export refuses it by name; without it the export is the same model.
    func testSeedOSSOutputBiasExport() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-seed-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("seed_oss").path).writeGGUF(to: out)) { e in
            XCTAssertTrue("\(e)".contains("attention_out_bias cannot be written for seed_oss"), "\(e)")
        }
        let plain = try rewritten("seed_oss", rename: { $0.hasSuffix("o_proj.bias") ? nil : $0 },
                                  config: { $0["attention_out_bias"] = false })
        defer { try? FileManager.default.removeItem(at: plain) }
        let ids = try reference("seed_oss").ints("input_ids")
        try ModelLoader.loadNetwork(path: plain.path).writeGGUF(to: out)
        XCTAssertNotNil(try GGUFFile(url: out).tensor("blk.0.post_attention_norm.weight"))
        XCTAssertEqual(try logits(out.path, ids), try logits(plain.path, ids))
    }

    /// Ministral 3's query temperature: without it the same model up to the original context (8 here), another one
    /// past it; and its Hub form, the text model inside Mistral3ForConditionalGeneration (text_config of model_type
    /// ministral3, tensors model.language_model.*), is the same model.
    func testMinistral3TemperatureAndWrapper() throws {
        let ref = try reference("ministral3")
        let ids = ref.ints("input_ids"), want = try ref.floats("logits").values, V = 384
        let c = try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("ministral3").path).config
        XCTAssertEqual(c.queryTemperature, QueryTemperature(beta: 0.1, originalMaxPositions: 8))
        XCTAssertEqual(c.yarn?.attentionFactor, 1)
        let cold = try ArchitectureFixtures.edited("ministral3") { config in
            var rope = config["rope_parameters"] as! [String: Any]
            rope["llama_4_scaling_beta"] = 0.0
            config["rope_parameters"] = rope
        }
        defer { try? FileManager.default.removeItem(at: cold) }
        let flat = try logits(cold.path, ids)
        XCTAssertLessThanOrEqual(maxAbsDiff(Array(flat[0 ..< 8 * V]), Array(want[0 ..< 8 * V])), 1e-4)
        XCTAssertGreaterThan(maxAbsDiff(Array(flat[8 * V ..< ids.count * V]), Array(want[8 * V ..< ids.count * V])), 0.01)

        let wrapped = try rewritten("ministral3", rename: { $0.hasPrefix("model.") ? "model.language_model." + $0.dropFirst(6) : $0 },
                                    config: { config in
                                        let text = config
                                        config = ["model_type": "mistral3", "architectures": ["Mistral3ForConditionalGeneration"],
                                                  "text_config": text, "image_token_index": 10]
                                    })
        defer { try? FileManager.default.removeItem(at: wrapped) }
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(wrapped.path, ids), want), 1e-4)
    }

    /// gpt-oss's attention sinks and router bias each matter (the fixture matches transformers with them through the
    /// every-architecture tests; its script checks its clamp matters); the Hub's MXFP4 checkpoints are refused by name.
    func testGptOssSinksRouterBiasAndMXFP4() throws {
        let ref = try reference("gpt_oss")
        let ids = ref.ints("input_ids"), want = try ref.floats("logits").values
        let c = try ModelLoader.loadNetwork(path: ArchitectureFixtures.url("gpt_oss").path).config
        XCTAssertTrue(c.attentionSinks && c.moe?.routerBias == true && c.moe?.expertBias == true)
        XCTAssertEqual(c.slidingLayers, [true, false])
        XCTAssertEqual(c.yarn?.truncate, false)
        for part in ["self_attn.sinks", "mlp.router.bias"] {
            // the part zeroed (a zero sink is still a sink: it moves the logits as well)
            let dir = try ArchitectureFixtures.edited("gpt_oss") { _ in }
            defer { try? FileManager.default.removeItem(at: dir) }
            let file = dir.appendingPathComponent("model.safetensors"), src = try SafetensorsFile(url: file)
            let tensors = src.tensorNames.map { n -> (name: String, dtype: DType, shape: [Int], data: Data) in
                let t = src.tensor(n)!
                return (n, t.dtype, t.shape, n.hasSuffix(part) ? Data(count: t.byteCount) : Data(t.bytes))
            }
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: file)
            XCTAssertGreaterThan(maxAbsDiff(try logits(dir.path, ids), want), 0.01, part)
        }
        let hub = try ArchitectureFixtures.edited("gpt_oss") { $0["quantization_config"] = ["quant_method": "mxfp4"] }
        defer { try? FileManager.default.removeItem(at: hub) }
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: hub.path)) { e in
            XCTAssertTrue("\(e)".contains("unsupported quantization_config 'mxfp4'"), "\(e)")
        }
    }

    /// A gpt-oss GGUF in llama.cpp's layout (gate and up experts apart, [E, F, D]; their biases; attn_sinks; the MLP's
    /// norm as post_attention_norm; the window every other layer) is the folder's model as llama.cpp runs it: swiglu
    /// limit 7 and yarn's ramp ends rounded, which the folder is edited to. (llama.cpp's own converter's file of the
    /// fixture is checked by hand: Scripts/check_gguf_export_llamacpp.py.)
    func testGptOssFromGGUFInLlamaCppLayout() throws {
        let src = try SafetensorsFile(url: ArchitectureFixtures.url("gpt_oss").appendingPathComponent("model.safetensors"))
        func t(_ n: String) -> TensorInfo { src.tensor(n)! }
        func halves(_ n: String) -> [UInt16] { Array(UnsafeBufferPointer(start: t(n).data.assumingMemoryBound(to: UInt16.self), count: t(n).elementCount)) }
        func data(_ v: [UInt16]) -> Data { v.withUnsafeBufferPointer { Data(buffer: $0) } }
        let (E, D, F) = (4, 64, 32)
        var w = GGUFWriter()
        w.set("general.architecture", .string("gpt-oss"))
        for (k, v) in [("context_length", 256), ("embedding_length", D), ("feed_forward_length", F), ("block_count", 2),
                       ("attention.head_count", 4), ("attention.head_count_kv", 2), ("attention.key_length", 16),
                       ("attention.value_length", 16), ("expert_count", E), ("expert_used_count", 2),
                       ("expert_feed_forward_length", F), ("attention.sliding_window", 6), ("rope.scaling.original_context_length", 16)] {
            w.set("gpt-oss.\(k)", .uint32(UInt32(v)))
        }
        w.set("gpt-oss.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("gpt-oss.rope.freq_base", .float32(150000))
        w.set("gpt-oss.rope.scaling.type", .string("yarn"))
        w.set("gpt-oss.rope.scaling.factor", .float32(4))
        func add(_ name: String, _ from: String) throws { try w.addTensor(name: name, dtype: t(from).dtype, shape: t(from).shape, data: Data(t(from).bytes)) }
        try add("token_embd.weight", "model.embed_tokens.weight")
        try add("output_norm.weight", "model.norm.weight")
        try add("output.weight", "lm_head.weight")
        for l in 0..<2 {
            let p = "model.layers.\(l).", b = "blk.\(l)."
            for (g, h) in [("attn_norm.weight", "input_layernorm.weight"), ("post_attention_norm.weight", "post_attention_layernorm.weight"),
                           ("attn_sinks.weight", "self_attn.sinks"), ("ffn_gate_inp.weight", "mlp.router.weight"), ("ffn_gate_inp.bias", "mlp.router.bias")]
                + ["q", "k", "v", "o"].flatMap { x in [("attn_\(x == "o" ? "output" : x).weight", "self_attn.\(x)_proj.weight"),
                                                       ("attn_\(x == "o" ? "output" : x).bias", "self_attn.\(x)_proj.bias")] } {
                try add(b + g, p + h)
            }
            // [E, D, 2F] with gate / up in alternate columns -> gate [E, F, D] and up [E, F, D]; down [E, F, D] -> [E, D, F]
            let gu = halves(p + "mlp.experts.gate_up_proj"), gub = halves(p + "mlp.experts.gate_up_proj_bias"), dn = halves(p + "mlp.experts.down_proj")
            var gate = [UInt16](), up = [UInt16](), down = [UInt16](), gateB = [UInt16](), upB = [UInt16]()
            for e in 0..<E {
                for f in 0..<F { for d in 0..<D { gate.append(gu[(e * D + d) * 2 * F + 2 * f]); up.append(gu[(e * D + d) * 2 * F + 2 * f + 1]) } }
                for d in 0..<D { for f in 0..<F { down.append(dn[(e * F + f) * D + d]) } }
                for f in 0..<F { gateB.append(gub[e * 2 * F + 2 * f]); upB.append(gub[e * 2 * F + 2 * f + 1]) }
            }
            try w.addTensor(name: b + "ffn_gate_exps.weight", dtype: .bf16, shape: [E, F, D], data: data(gate))
            try w.addTensor(name: b + "ffn_up_exps.weight", dtype: .bf16, shape: [E, F, D], data: data(up))
            try w.addTensor(name: b + "ffn_down_exps.weight", dtype: .bf16, shape: [E, D, F], data: data(down))
            try w.addTensor(name: b + "ffn_gate_exps.bias", dtype: .bf16, shape: [E, F], data: data(gateB))
            try w.addTensor(name: b + "ffn_up_exps.bias", dtype: .bf16, shape: [E, F], data: data(upB))
            try add(b + "ffn_down_exps.bias", p + "mlp.experts.down_proj_bias")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("persona-gptoss-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: out) }
        try w.write(to: out)
        let asLlamaCpp = try ArchitectureFixtures.edited("gpt_oss") { config in
            config["swiglu_limit"] = 7.0
            var rope = config["rope_parameters"] as! [String: Any]
            rope["truncate"] = true
            config["rope_parameters"] = rope
        }
        defer { try? FileManager.default.removeItem(at: asLlamaCpp) }
        let ids = try reference("gpt_oss").ints("input_ids")
        let model = try ModelLoader.loadNetwork(path: out.path)
        XCTAssertEqual(model.config.slidingLayers, [true, false])
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(out.path, ids), try logits(asLlamaCpp.path, ids)), 1e-5)
    }

    /// gpt-oss as llama.cpp makes its GGUFs: the experts MXFP4, the other matrices Q8_0 (llama.cpp's converter and
    /// quantizer, Scripts/make_mxfp4_fixture.py). In exact precision our engine gives, from the file as stored, what
    /// llama.cpp computes for the same weights widened to f32 by gguf-py.
    func testGptOssMXFP4FromLlamaCppsQuantizer() throws {
        let dir = ArchitectureFixtures.url("quant")
        let file = try GGUFFile(url: dir.appendingPathComponent("gpt_oss_mxfp4.gguf"))
        XCTAssertEqual(file.tensor("blk.0.ffn_gate_exps.weight")?.dtype, .mxfp4)
        XCTAssertEqual(file.tensor("blk.1.ffn_down_exps.weight")?.dtype, .mxfp4)
        let ref = try SafetensorsFile(url: dir.appendingPathComponent("gpt_oss_mxfp4.reference.safetensors"))
        let t = try XCTUnwrap(ref.tensor("logits"))
        let want = Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Float.self), count: t.elementCount))
        let ids = try reference("gpt_oss").ints("input_ids")
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(dir.appendingPathComponent("gpt_oss_mxfp4.gguf").path, ids), want), 1e-4)
    }
}
