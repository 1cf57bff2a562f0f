import Foundation
import PersonaFormats
import PersonaModels
import XCTest
@testable import PersonaTestSupport

/// GGUF files quantised by llama.cpp's own quantizer into every type we read (Q4_0 ... IQ4_XS, and the *_K_M
/// mixes), against transformers running the same files dequantised by gguf-py (Scripts/make_quant_fixtures.py).
final class QuantizedModelTests: XCTestCase {
    var folder: URL { TestPaths.fixtures.appendingPathComponent("quant") }

    func testEveryTypeQuantisedByLlamaCppMatchesTransformers() throws {
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("references.json"))) as! [String: Any]
        let ids = (meta["input_ids"] as! [NSNumber]).map(\.intValue)
        let files = meta["files"] as! [String: [String: Any]]
        var covered = Set<String>()
        for (name, info) in files.sorted(by: { $0.key < $1.key }) {
            let url = folder.appendingPathComponent(name)
            // the file holds the types the quantizer reported
            let stored = Set(try GGUFFile(url: url).tensorNamesInFileOrder.map { try GGUFFile(url: url).tensor($0)!.dtype.rawValue.uppercased() })
            XCTAssertEqual(stored, Set(info["tensor_types"] as! [String]), name)
            covered.formUnion(stored)
            let net = try ModelLoader.loadNetwork(path: url.path)
            let trace = try HiddenStateTrace.run(model: net, tokens: ids)
            let ref = try SafetensorsFile(url: folder.appendingPathComponent(name.replacingOccurrences(of: ".gguf", with: ".reference.safetensors")))
            func values(_ t: String) -> [Float] {
                let x = ref.tensor(t)!
                return Array(UnsafeBufferPointer(start: x.data.assumingMemoryBound(to: Float.self), count: x.elementCount))
            }
            for (i, h) in trace.hiddenStates.enumerated() {
                let expected = values("hidden_states.\(i)")
                let d = maxAbsDiff(h, expected)
                XCTAssertLessThanOrEqual(d, 2e-5 * max(1, expected.map(abs).max()!), "\(name) hidden_states.\(i): max |diff| \(d)")
            }
            let expected = values("logits")
            let d = maxAbsDiff(trace.logits, expected)
            XCTAssertLessThanOrEqual(d, 2e-5 * max(1, expected.map(abs).max()!), "\(name) logits: max |diff| \(d)")
        }
        XCTAssertEqual(covered.subtracting(["F32"]), ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"])
    }

    /// Native precision (activations rounded to q8_0 / q8_1 / q8_K as ggml does) against llama.cpp's own logits on
    /// the same files (Scripts/make_llamacpp_quant_logits.py): the prompt at once (our prompt tiles; llama.cpp's batch)
    /// and one token at a time (our decode kernels; llama.cpp token by token). Every position agrees to f32 noise
    /// (the bound of the exact test above), except that one position per file and path may carry one activation
    /// rounded to the other side of a half: our rounding is ggml's reference one (x * (1/d), half away from zero),
    /// llama.cpp's x86 code computes 127 / amax and rounds half to even, so a value within an ulp of a half can go
    /// either way (q5_1, batch, position 5: 1.4e-3; the others agree to ~1e-5). Every position, that one too, must be
    /// at least 100x closer to llama.cpp than the f32 computation of the same weights (transformers' logits, which
    /// our exact precision equals), which is 0.4-0.8 away. Attention over these 8 positions runs the portable loop
    /// (pk_attention_head), so what is compared is the matrix kernels; a 1-ulp change in an attention output was
    /// seen to flip one q8_0 rounding here and move q4_0's logits by 0.25 (the AVX-512 tile kernels, used from 16
    /// positions on, are checked against a Double softmax-attention in AttentionKernelTests instead).
    func testNativePrecisionMatchesLlamaCpp() throws {
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("references.json"))) as! [String: Any]
        let ids = (meta["input_ids"] as! [NSNumber]).map(\.intValue)
        let files = (meta["files"] as! [String: Any]).keys.sorted()
        XCTAssertEqual(files.count, 12)
        for name in files {
            let url = folder.appendingPathComponent(name)
            let tf = try SafetensorsFile(url: folder.appendingPathComponent(name.replacingOccurrences(of: ".gguf", with: ".reference.safetensors")))
            let logits = tf.tensor("logits")!
            let f32Result = Array(UnsafeBufferPointer(start: logits.data.assumingMemoryBound(to: Float.self), count: logits.elementCount))
            try assertNativeMatchesLlamaCpp(name, model: url, ids: ids,
                                            llamaCpp: folder.appendingPathComponent(name.replacingOccurrences(of: ".gguf", with: ".llamacpp.safetensors")),
                                            f32Result: f32Result)
        }
    }

    /// F16 weights in native precision: ggml multiplies them with the activations rounded to f16 (its vec_dot_type
    /// for F16; F16C, products and sums in f32 on x86), and so must we (Scripts/make_llamacpp_f16_logits.py: llama.cpp
    /// on llama2-f16.gguf, 8 ids, both paths). The f32 result is llama.cpp's own on the file's F32 copy (gguf-py),
    /// which our exact precision must equal to f32 noise: that is the computation native precision leaves.
    func testNativeF16MatchesLlamaCpp() throws {
        let fixtures = TestPaths.fixtures, model = fixtures.appendingPathComponent("llama2-f16.gguf")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("llama2-f16.reference.json"))) as! [String: Any]
        let ids = Array((meta["input_ids"] as! [NSNumber]).map(\.intValue).prefix(8))
        let url = fixtures.appendingPathComponent("llama2-f16.llamacpp.safetensors")
        let lc = try SafetensorsFile(url: url)
        let f32 = lc.tensor("logits_f32_copy")!
        let f32Result = Array(UnsafeBufferPointer(start: f32.data.assumingMemoryBound(to: Float.self), count: f32.elementCount))
        let net = try ModelLoader.loadNetwork(path: model.path)
        let exact = Array(try net.forward(ids, cache: net.makeCache(), logits: .all))
        XCTAssertLessThanOrEqual(maxAbsDiff(exact, f32Result), 2e-5 * max(1, f32Result.map(abs).max()!), "exact against llama.cpp's F32 copy")
        try assertNativeMatchesLlamaCpp("llama2-f16", model: model, ids: ids, llamaCpp: url, f32Result: f32Result, separation: 10)
    }
}
