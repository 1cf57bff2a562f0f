import Foundation
import PersonaFormats
import PersonaModels
import XCTest
@testable import PersonaTestSupport

/// Linear RoPE scaling (position interpolation) against llama.cpp (Scripts/make_llamacpp_rope_scaling_logits.py:
/// llama2-f32.gguf with llama.rope.scaling.type = linear, factor 4, 16 ids). GGUF files with a scaling factor used
/// to run unscaled without a word, and HF configs with rope_scaling linear were refused.
final class RopeScalingTests: XCTestCase {
    let factor = 4.0

    func reference() throws -> (ids: [Int], linear: [Float], plain: [Float], yarn: [Float]) {
        let st = try SafetensorsFile(url: TestPaths.fixtures.appendingPathComponent("llama2-f32.rope-linear.llamacpp.safetensors"))
        func floats(_ n: String) throws -> [Float] {
            let t = try XCTUnwrap(st.tensor(n))
            return Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Float.self), count: t.elementCount))
        }
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("llama2-f32.reference.json"))) as! [String: Any]
        let ids = Array((meta["input_ids"] as! [NSNumber]).map(\.intValue).prefix(16))
        return (ids, try floats("logits_linear4"), try floats("logits_plain"), try floats("logits_yarn4"))
    }

    /// The F32 fixture rewritten with `extra` metadata (what the script gave llama.cpp).
    func ggufCopy(_ extra: [String: GGUFValue]) throws -> URL {
        let url = try PersonaTestSupport.ggufCopy(of: TestPaths.fixtures.appendingPathComponent("llama2-f32.gguf"), setting: extra)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func logits(_ path: String, _ ids: [Int]) throws -> [Float] {
        let net = try ModelLoader.loadNetwork(path: path)
        return Array(try net.forward(ids, cache: net.makeCache(), logits: .all))
    }

    func testGGUFLinearScalingMatchesLlamaCpp() throws {
        let ref = try reference()
        let scale = max(1, ref.linear.map(abs).max()!)
        // the two references are far apart, so matching one is not matching the other by tolerance
        XCTAssertGreaterThan(maxAbsDiff(ref.linear, ref.plain), 1)
        let scaled = try ggufCopy(["llama.rope.scaling.type": .string("linear"), "llama.rope.scaling.factor": .float32(Float(factor))])
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(scaled.path, ref.ids), ref.linear), 2e-5 * scale)
        // the older key, and no type (llama.cpp's default is linear)
        let old = try ggufCopy(["llama.rope.scale_linear": .float32(Float(factor))])
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(old.path, ref.ids), ref.linear), 2e-5 * scale)
        // type none: llama.cpp never scales
        let none = try ggufCopy(["llama.rope.scaling.type": .string("none"), "llama.rope.scaling.factor": .float32(Float(factor))])
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(none.path, ref.ids), ref.plain), 2e-5 * scale)
        let plain = TestPaths.fixtures.appendingPathComponent("llama2-f32.gguf").path
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(plain, ref.ids), ref.plain), 2e-5 * scale)
    }

    /// YaRN (factor 4, original context 64 of the fixture's 256; the `qwen2_yarn` fixture checks it against
    /// transformers): llama.cpp's logits on the GGUF with the converter's keys, and the same weights as a Hugging Face
    /// folder with rope_scaling yarn give them too, so the two readings of YaRN agree.
    func testYarnMatchesLlamaCpp() throws {
        let ref = try reference()
        let scale = max(1, ref.yarn.map(abs).max()!)
        XCTAssertGreaterThan(maxAbsDiff(ref.yarn, ref.plain), 1)
        XCTAssertGreaterThan(maxAbsDiff(ref.yarn, ref.linear), 1)
        let yarn = try ggufCopy(["llama.rope.scaling.type": .string("yarn"), "llama.rope.scaling.factor": .float32(Float(factor)),
                                 "llama.rope.scaling.original_context_length": .uint32(64)])
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(yarn.path, ref.ids), ref.yarn), 2e-5 * scale)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rope-yarn-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: ArchitectureFixtures.url("llama2"), to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let configURL = dir.appendingPathComponent("config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["rope_scaling"] = ["type": "yarn", "factor": factor, "original_max_position_embeddings": 64]
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(dir.path, ref.ids), ref.yarn), 2e-5 * scale)
        // and its export carries it as the converter writes it
        let gguf = dir.appendingPathComponent("exported.gguf")
        try ModelLoader.loadNetwork(path: dir.path).writeGGUF(to: gguf)
        let meta = try GGUFFile(url: gguf).metadata
        XCTAssertEqual(meta["llama.rope.scaling.type"]?.string, "yarn")
        XCTAssertEqual(meta["llama.rope.scaling.original_context_length"]?.int, 64)
        XCTAssertNil(meta["llama.rope.scaling.attn_factor"])
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(gguf.path, ref.ids), ref.yarn), 2e-5 * scale)
    }

    /// The same weights as a Hugging Face folder with rope_scaling {"rope_type": "linear", "factor": 4}: transformers
    /// divides every inverse frequency by the factor, as llama.cpp's freq_scale does.
    func testHFConfigLinearScalingMatchesLlamaCpp() throws {
        let ref = try reference()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rope-hf-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: ArchitectureFixtures.url("llama2"), to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let configURL = dir.appendingPathComponent("config.json")
        for scaling: [String: Any] in [["rope_type": "linear", "factor": factor], ["type": "linear", "factor": factor]] {
            var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
            config["rope_scaling"] = scaling
            try JSONSerialization.data(withJSONObject: config).write(to: configURL)
            XCTAssertLessThanOrEqual(maxAbsDiff(try logits(dir.path, ref.ids), ref.linear), 2e-5 * max(1, ref.linear.map(abs).max()!), "\(scaling)")
        }
        // exported to GGUF, the scaling goes with it (rope.scaling.type / factor, as convert_hf_to_gguf.py writes)
        let gguf = dir.appendingPathComponent("exported.gguf")
        try ModelLoader.loadNetwork(path: dir.path).writeGGUF(to: gguf)
        let meta = try GGUFFile(url: gguf).metadata
        XCTAssertEqual(meta["llama.rope.scaling.type"]?.string, "linear")
        XCTAssertEqual(meta["llama.rope.scaling.factor"]?.double, factor)
        XCTAssertLessThanOrEqual(maxAbsDiff(try logits(gguf.path, ref.ids), ref.linear), 2e-5 * max(1, ref.linear.map(abs).max()!))
    }

    /// Scalings that are more than a factor are refused by name, not run as plain RoPE; so is a yarn file whose
    /// yarn_* keys ask for what llama.cpp does not do (it reads none of them).
    func testOtherScalingTypesAreRefused() throws {
        let longrope = try ggufCopy(["llama.rope.scaling.type": .string("longrope"), "llama.rope.scaling.factor": .float32(4)])
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: longrope.path)) {
            XCTAssertTrue("\($0)".contains("unsupported rope scaling type 'longrope'"), "\($0)")
        }
        let yarn = try ggufCopy(["llama.rope.scaling.type": .string("yarn"), "llama.rope.scaling.factor": .float32(4)])
        let y = try XCTUnwrap(try ModelLoader.loadNetwork(path: yarn.path).config.yarn)
        XCTAssertEqual(y.attentionFactor, 0.1 * Foundation.log(4.0) + 1, accuracy: 1e-6)
        let beta = try ggufCopy(["llama.rope.scaling.type": .string("yarn"), "llama.rope.scaling.factor": .float32(4),
                                 "llama.rope.scaling.yarn_beta_fast": .float32(8)])
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: beta.path)) {
            XCTAssertTrue("\($0)".contains("llama.rope.scaling.yarn_beta_fast 8.0 (llama.cpp runs yarn with 32.0"), "\($0)")
        }
        let moe = try ggufCopy(["llama.expert_count": .uint32(8)])
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: moe.path)) {
            XCTAssertTrue("\($0)".contains("a mixture of experts needs llama.expert_used_count between 1 and llama.expert_count 8"), "\($0)")
        }
        // a mixture (Mixtral's llama files) without its experts' tensors: named, not run as a dense model
        let experts = try ggufCopy(["llama.expert_count": .uint32(8), "llama.expert_used_count": .uint32(2)])
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: experts.path)) {
            XCTAssertTrue("\($0)".contains("missing tensor 'blk.0.ffn_gate_inp.weight'"), "\($0)")
        }
        let partial = try ggufCopy(["llama.rope.dimension_count": .uint32(8)])
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: partial.path)) {
            XCTAssertTrue("\($0)".contains("llama.rope.dimension_count 8 is not the head size 16"), "\($0)")
        }
        let attn = try ggufCopy(["llama.rope.scaling.factor": .float32(4), "llama.rope.scaling.attn_factor": .float32(0.5)])
        XCTAssertThrowsError(try ModelLoader.loadNetwork(path: attn.path)) {
            XCTAssertTrue("\($0)".contains("rope.scaling.attn_factor"), "\($0)")
        }
    }
}
