import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

/// MXFP4 (GGML type 39, gpt-oss's experts in llama.cpp's files): read as stored, widened to f32 bit for bit as gguf-py
/// does, multiplied in exact precision at every SIMD level (through the portable conversion: no kernel of its own yet),
/// and computed as exact when native precision is asked for (llama.cpp's MXFP4 x q8_0 arithmetic is not implemented).
final class MXFP4Tests: XCTestCase {
    func testGeometryAndGGMLId() {
        XCTAssertEqual(DType.mxfp4.ggmlType, 39)
        XCTAssertEqual(DType(ggmlType: 39), .mxfp4)
        XCTAssertEqual(DType.mxfp4.blockSize, 32)
        XCTAssertEqual(DType.mxfp4.blockBytes, 17)
        XCTAssertEqual(DType.mxfp4.rowBytes(64), 34)
        XCTAssertNil(DType.mxfp4.rowBytes(48))
        XCTAssertEqual(pk_native_supported(DType.mxfp4.kernelCode), 0)
    }

    /// Random nibbles under E8M0 scales that include the subnormal encodings 0 and 1, dequantised by gguf-py.
    func testDequantMatchesGGUFPy() {
        for (name, hexBytes, hexValues) in GGUFPyReference.dequantMXFP4 {
            let bytes = [UInt8](hex: hexBytes), expected = floatsFromHex(hexValues)
            XCTAssertEqual(DType.mxfp4.rowBytes(expected.count), bytes.count, name)
            SIMDLevels.each { level in
                var out = [Float](repeating: .nan, count: expected.count)
                pk_dequant_row(DType.mxfp4.kernelCode, bytes, Int64(expected.count), &out)
                for i in 0..<expected.count where out[i].bitPattern != expected[i].bitPattern {
                    XCTFail("\(level) \(name) element \(i): \(out[i]) vs gguf-py \(expected[i])"); break
                }
            }
        }
    }

    /// Products of random rows (scales around 2^-7) against f64 sums of the widened rows, for a decode step and
    /// prompts, at every level; Ops.matmul in either precision gives pk_matmul_rows' bits.
    func testMatmulAgainstConvertedRows() {
        var rng = TestRNG(39)
        let pool = ThreadPool(threads: 2)
        let rows = 21, cols = 256, rb = DType.mxfp4.rowBytes(cols)!
        var w = (0..<(rows * rb)).map { _ in rng.byte() }
        for b in stride(from: 0, to: w.count, by: 17) { w[b] = 118 + rng.byte() % 6 }
        let deq = (0..<rows).map { r in w[(r * rb)..<((r + 1) * rb)].withUnsafeBytes { DType.mxfp4.floats($0, count: cols)! } }
        SIMDLevels.each { level in
            for T in [1, 3, 9] {
                let x = (0..<(T * cols)).map { _ in rng.normal() }
                var y = [Float](repeating: .nan, count: T * rows)
                pk_matmul_rows(DType.mxfp4.kernelCode, w, Int64(cols), x, Int64(cols), Int64(T), &y, Int64(rows), 0, Int64(rows))
                for t in 0..<T {
                    for r in 0..<rows {
                        var exact = 0.0, size = 0.0
                        for c in 0..<cols { let p = Double(deq[r][c]) * Double(x[t * cols + c]); exact += p; size += abs(p) }
                        XCTAssertEqual(Double(y[t * rows + r]), exact, accuracy: Double(cols + 1) * 0x1p-24 * size, "\(level) T \(T) row \(r)")
                    }
                }
                for precision in [MatmulPrecision.exact, .native] {
                    var out = [Float](repeating: .nan, count: T * rows)
                    w.withUnsafeBytes { raw in
                        let m = WeightMatrix(data: raw.baseAddress!, dtype: .mxfp4, rows: rows, cols: cols, owner: nil)
                        Ops.matmul(m, x, T: T, &out, precision: precision, pool: pool)
                    }
                    XCTAssertEqual(out.map(\.bitPattern), y.map(\.bitPattern), "\(level) T \(T) \(precision)")
                }
            }
        }
    }
}
