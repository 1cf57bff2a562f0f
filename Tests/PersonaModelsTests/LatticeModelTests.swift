import Foundation
import PersonaFormats
import PersonaHash
import PersonaModels
import PersonaTensor
import XCTest
@testable import PersonaTestSupport

/// Real GGUF files in the lattice types, quantised by llama.cpp's own quantizer (Scripts/make_lattice_fixtures.py:
/// IQ3_S pure, and llama.cpp's IQ3_S and IQ3_M mixes): every tensor equals gguf-py's dequantisation bit for bit
/// (SHA-256 of the float32 values, recorded by the script), and the model's hidden states and logits equal those of
/// its float32 copy (`GGUFQuantizer` F32, i.e. `persona convert --to gguf --quantize F32`) within the bound the other
/// quantised files meet against transformers (QuantizedModelTests).
final class LatticeModelTests: XCTestCase {
    var folder: URL { TestPaths.fixtures.appendingPathComponent("quant") }

    func testRealLatticeFilesMatchGGUFPyAndTheirF32Copy() throws {
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("lattice.json"))) as! [String: Any]
        let files = meta["files"] as! [String: [String: Any]]
        XCTAssertEqual(Set(files.keys), ["iq3_s_pure.gguf", "iq3_s.gguf", "iq3_m.gguf"])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("persona-lattice-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ids = [1, 403, 407, 261, 378, 17, 200, 511]
        var types = Set<String>()
        for (name, info) in files.sorted(by: { $0.key < $1.key }) {
            let url = folder.appendingPathComponent(name)
            let file = try GGUFFile(url: url)
            let tensors = info["tensors"] as! [String: [String: Any]]
            XCTAssertEqual(Set(file.tensorNamesInFileOrder), Set(tensors.keys), name)
            for (tname, t) in tensors {
                let ti = try XCTUnwrap(file.tensor(tname), "\(name) \(tname)")
                XCTAssertEqual(ti.dtype.rawValue.uppercased(), t["type"] as? String, "\(name) \(tname)")
                XCTAssertEqual(ti.shape, (t["shape"] as! [NSNumber]).map(\.intValue), "\(name) \(tname)")
                types.insert(ti.dtype.rawValue)
                let values = try XCTUnwrap(ti.dtype.floats(UnsafeRawBufferPointer(start: ti.data, count: ti.byteCount), count: ti.shape.reduce(1, *)))
                var h = SHA256Hasher()
                values.withUnsafeBytes { h.update($0) }
                XCTAssertEqual(h.hexDigest(), t["sha256"] as? String, "\(name) \(tname): values differ from gguf-py's")
            }
            let copy = dir.appendingPathComponent(name.replacingOccurrences(of: ".gguf", with: "-f32.gguf"))
            try GGUFQuantizer(fileType: .f32).quantize(file, to: copy)
            let a = try HiddenStateTrace.run(model: ModelLoader.loadNetwork(path: url.path), tokens: ids)
            let b = try HiddenStateTrace.run(model: ModelLoader.loadNetwork(path: copy.path), tokens: ids)
            XCTAssertEqual(a.hiddenStates.count, b.hiddenStates.count)
            for (i, (h, expected)) in zip(a.hiddenStates, b.hiddenStates).enumerated() {
                let d = maxAbsDiff(h, expected)
                XCTAssertLessThanOrEqual(d, 2e-5 * max(1, expected.map(abs).max()!), "\(name) hidden_states.\(i): max |diff| \(d)")
            }
            let d = maxAbsDiff(a.logits, b.logits)
            XCTAssertGreaterThan(b.logits.map(abs).max()!, 0, name)
            XCTAssertLessThanOrEqual(d, 2e-5 * max(1, b.logits.map(abs).max()!), "\(name) logits: max |diff| \(d)")
        }
        XCTAssertTrue(types.contains("iq3_s"))
    }

    /// Native precision (q8_K activations, ggml's integer dot products) against llama.cpp's own logits on a file of
    /// every lattice type (Scripts/make_lattice_native_fixtures.py: the IQ3_S file above with its IQ3_S matrices
    /// replaced by random blocks of the type; llama.cpp's quantizer cannot write the others without an importance
    /// matrix, but llama.cpp runs them). The prompt at once (our VNNI tiles, or the decoded chunks) and one token at a
    /// time (the per-row kernels), with QuantizedModelTests' rule: every position within f32 noise of llama.cpp except
    /// at most one per file and path (an activation rounded to the other side of a half: llama.cpp's x86 q8_K rounding
    /// differs from ggml's reference one, which ours is), and every position at least 100x closer to llama.cpp than
    /// the exact (f32) result of the same weights is. Where llama.cpp's own two paths disagree beyond noise (IQ3_S,
    /// position 4: its batch and its token-by-token logits are 0.32 apart, one rounding flipped in its batch path),
    /// ours must be within noise of one of llama.cpp's two paths there (ours give the same bits both ways).
    func testNativePrecisionMatchesLlamaCppEveryLatticeType() throws {
        let ids = [1, 403, 407, 261, 378, 17, 200, 511]
        for type in ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"] {
            let url = folder.appendingPathComponent("lattice_\(type).gguf")
            XCTAssertEqual(try GGUFFile(url: url).tensor("blk.0.attn_q.weight")?.dtype.rawValue, type)
            let exactNet = try ModelLoader.loadNetwork(path: url.path)
            let exact = Array(try exactNet.forward(ids, cache: exactNet.makeCache(), logits: .all))
            try assertNativeMatchesLlamaCpp(type, model: url, ids: ids,
                                            llamaCpp: folder.appendingPathComponent("lattice_\(type).llamacpp.safetensors"), f32Result: exact)
        }
    }
}
