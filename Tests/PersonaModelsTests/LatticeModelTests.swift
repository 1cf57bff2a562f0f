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
}
