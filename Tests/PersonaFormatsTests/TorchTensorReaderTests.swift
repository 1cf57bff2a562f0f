import Foundation
import XCTest
@testable import PersonaTestSupport
@testable import PersonaFormats
import PersonaTensor

/// `.pt` files written by `torch.save` (Scripts/make_format_fixtures.py), read back byte for byte.
final class TorchTensorReaderTests: XCTestCase {
    let dir = TestPaths.fixtures.appendingPathComponent("torch")

    func testReadsTorchSaveFiles() throws {
        let ex = try XCTUnwrap(try TestPaths.expected()["torch"] as? [String: [String: [String: Any]]])
        XCTAssertEqual(Set(ex.keys), ["vector.pt", "dict.pt", "layers.pt"])
        for (file, tensors) in ex {
            let got = try TorchTensorReader.readTensors(url: dir.appendingPathComponent(file))
            XCTAssertEqual(Set(got.keys), Set(tensors.keys), file)
            for (key, e) in tensors {
                let t = try XCTUnwrap(got[key], "\(file) \(key)")
                XCTAssertEqual(t.dtype.rawValue, e["dtype"] as? String, "\(file) \(key)")
                XCTAssertEqual(t.shape, e["shape"] as? [Int], "\(file) \(key)")
                XCTAssertEqual(t.data.withUnsafeBytes { hexString($0) }, e["hex"] as? String, "\(file) \(key)")
            }
        }
        // persona_vectors layout: one [layers + 1, hidden] tensor under "".
        XCTAssertEqual(try TorchTensorReader.readTensors(url: dir.appendingPathComponent("vector.pt"))[""]?.shape, [6, 8])
    }

    func testRefusesWhatItMustNotRead() throws {
        assertFormatError(try TorchTensorReader.readTensors(url: dir.appendingPathComponent("bad_noncontiguous.pt")), mentions: ["non-contiguous"])
        assertFormatError(try TorchTensorReader.readTensors(url: dir.appendingPathComponent("bad_legacy.pt")), mentions: ["legacy"])
        assertFormatError(try TorchTensorReader.readTensors(url: dir.appendingPathComponent("bad_deflated.pt")), mentions: ["compressed"])
        // A pickle whose REDUCE would call os.system: refused at the GLOBAL, nothing runs.
        assertFormatError(try TorchTensorReader.readTensors(url: dir.appendingPathComponent("bad_evil.pt")), mentions: ["bad_evil.pt", "refusing global", "system"])
        assertFormatError(try TorchTensorReader.readTensors(url: TestPaths.fixtures.appendingPathComponent("small.safetensors")), mentions: ["zip"])
    }

    func testTruncatedAndMutatedArchivesFailCleanly() throws {
        let name = URL(fileURLWithPath: "/hostile/x.pt")
        for file in ["vector.pt", "dict.pt"] {
            let full = try [UInt8](Data(contentsOf: dir.appendingPathComponent(file)))
            for n in 0 ..< full.count {
                assertFormatError(try TorchTensorReader.readTensors(file: MappedFile(url: name, contents: Array(full[..<n]))), mentions: ["x.pt"])
            }
            var rng = FuzzRNG(seed: 0x70_7263)
            var ok = 0, failed = 0
            let iterations = ProcessInfo.processInfo.environment["PERSONA_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 1500
            for _ in 0 ..< iterations {
                var b = full
                for _ in 0 ..< 1 + Int(rng.next() % 4) {
                    b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                do {
                    let t = try TorchTensorReader.readTensors(file: MappedFile(url: name, contents: b))
                    for (_, v) in t {
                        if case let .success(n) = expectedByteCount(dtype: v.dtype, shape: v.shape) { XCTAssertEqual(n, v.data.count) }
                        else { XCTFail("bad shape \(v.shape)") }
                    }
                    ok += 1
                } catch is FormatError {
                    failed += 1
                } catch {
                    XCTFail("non-FormatError \(error)")
                }
            }
            XCTAssertGreaterThan(failed, 0, file)
            XCTAssertGreaterThan(ok, 0, file)
        }
    }
}
