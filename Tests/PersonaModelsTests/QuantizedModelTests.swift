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
}
