import CPersonaKernels
import Foundation
import PersonaModels
import XCTest

/// NaN/Inf in weights or activations must stop the forward pass with an error naming the hook point and position,
/// never flow silently into logits or monitoring scores.
final class NumericsTests: XCTestCase {
    let ids = [1, 5, 9, 13]

    /// A temporary copy of the llama2 fixture folder with `bits` written over one element of one BF16 tensor.
    /// Offsets come from reading the safetensors header here (8-byte length + JSON), not through PersonaFormats.
    func corruptedCopy(tensor: String, element: Int, bf16 bits: UInt16) throws -> URL {
        let src = TestPaths.fixtures.appendingPathComponent("llama2")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("numerics-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: src, to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: file)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8 ..< 8 + n)) as? [String: Any])
        let info = try XCTUnwrap(header[tensor] as? [String: Any])
        XCTAssertEqual(info["dtype"] as? String, "BF16")
        let start = try XCTUnwrap((info["data_offsets"] as? [Int])?.first)
        let at = 8 + n + start + 2 * element
        data[at] = UInt8(bits & 0xff)
        data[at + 1] = UInt8(bits >> 8)
        try data.write(to: file)
        return dir
    }

    func forwardError(_ model: TransformerModel, hooks: HookSet = HookSet(), logits: LogitsMode = .last) -> String? {
        do {
            try model.forward(ids, cache: model.makeCache(capacity: 16), hooks: hooks, logits: logits)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testCleanFixtureRunsWithoutError() throws {
        let m = try ModelLoader.loadNetwork(path: TestPaths.fixtures.appendingPathComponent("llama2").path)
        XCTAssertNil(forwardError(m, logits: .all))
    }

    func testNaNWeightInBlockOneIsReportedAtThatBlock() throws {
        // down_proj of block 1 is [64, 128]: element 5 * 128 + 3 feeds hidden index 5 of every position.
        let dir = try corruptedCopy(tensor: "model.layers.1.mlp.down_proj.weight", element: 5 * 128 + 3, bf16: 0x7fc0)
        let m = try ModelLoader.loadNetwork(path: dir.path)
        let msg = try XCTUnwrap(forwardError(m))
        XCTAssertTrue(msg.hasPrefix("non-finite activation (NaN/Inf) in blocks.1.hook_resid_post at position 0"), msg)
        XCTAssertTrue(msg.contains("index 5"), msg)
        // Block 0's output is still clean: a capture there sees only finite values before the error.
        let cap = CaptureBuffer()
        _ = forwardError(m, hooks: HookSet([Intervention(.residPost(0), .capture(cap))]))
        XCTAssertEqual(cap.values.count, ids.count * m.config.hiddenSize)
        XCTAssertTrue(cap.values.allSatisfy { $0.isFinite })
    }

    func testInfEmbeddingIsReportedAtTheTokensPosition() throws {
        // Row 9 of the embedding (token id 9, third position of `ids`), column 7 set to +Inf.
        let dir = try corruptedCopy(tensor: "model.embed_tokens.weight", element: 9 * 64 + 7, bf16: 0x7f80)
        let m = try ModelLoader.loadNetwork(path: dir.path)
        let msg = try XCTUnwrap(forwardError(m))
        XCTAssertTrue(msg.hasPrefix("non-finite activation (NaN/Inf) in hook_embed at position 2: value inf at index 7"), msg)
    }

    func testNaNFinalNormIsReportedEvenWithoutLogits() throws {
        let dir = try corruptedCopy(tensor: "model.norm.weight", element: 11, bf16: 0xffc0)
        let m = try ModelLoader.loadNetwork(path: dir.path)
        for mode in [LogitsMode.none, .last, .all] {
            let msg = try XCTUnwrap(forwardError(m, logits: mode))
            XCTAssertTrue(msg.hasPrefix("non-finite activation (NaN/Inf) in ln_final.hook_normalized at position 0"), msg)
            XCTAssertTrue(msg.contains("index 11"), msg)
        }
    }

    func testInfiniteSteeringCoefficientIsReported() throws {
        let m = try ModelLoader.loadNetwork(path: TestPaths.fixtures.appendingPathComponent("llama2").path)
        let D = m.config.hiddenSize
        let v = (0..<D).map { Float($0 % 5) - 2 }
        // +Inf coefficient on the last position only: earlier positions are clean, the last one is reported.
        let hooks = HookSet([Intervention(.residPost(1), positions: .last, .add(vector: v, coef: .infinity))])
        let msg = try XCTUnwrap(forwardError(m, hooks: hooks))
        XCTAssertTrue(msg.hasPrefix("non-finite activation (NaN/Inf) in blocks.1.hook_resid_post at position 3"), msg)
        // A finite coefficient large enough to overflow f32 is caught the same way (at block 0 this time).
        let big = HookSet([Intervention(.residPost(0), .add(vector: v, coef: 3e38))])
        let msg2 = try XCTUnwrap(forwardError(m, hooks: big))
        XCTAssertTrue(msg2.hasPrefix("non-finite activation (NaN/Inf) in blocks.0.hook_resid_post at position 0"), msg2)
        // The model stays usable after the error.
        XCTAssertNil(forwardError(m))
    }

    func testFirstNonFiniteKernel() {
        // Every length around the kernel's 256-float blocks, a special value at every index, compared with isFinite.
        let specials: [Float] = [.nan, -.nan, .infinity, -.infinity, Float(bitPattern: 0x7f80_0001), Float(bitPattern: 0xffff_ffff)]
        let finites: [Float] = [0, -0.0, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, 1]
        for n in [0, 1, 7, 255, 256, 257, 513] {
            var x = (0..<n).map { finites[$0 % finites.count] }
            XCTAssertEqual(pk_first_nonfinite(x, Int64(n)), -1, "n=\(n)")
            for i in stride(from: 0, to: n, by: max(1, n / 37)) {
                let s = specials[i % specials.count]
                x[i] = s
                if i + 3 < n { x[i + 3] = .nan }   // a later one must not win
                XCTAssertEqual(pk_first_nonfinite(x, Int64(n)), Int64(i), "n=\(n) i=\(i) value \(s)")
                XCTAssertEqual(x.firstIndex { !$0.isFinite }, i)
                x = (0..<n).map { finites[$0 % finites.count] }
            }
        }
    }
}
