import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

/// The importance-matrix lattice types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M): read as stored, widened
/// to f32 bit for bit as gguf-py does, multiplied in exact precision at every SIMD level, and in native precision
/// with ggml's q8_K arithmetic.
final class LatticeTypeTests: XCTestCase {
    static let types: [(String, DType, UInt32, Int)] = [   // name, type, GGML id, block bytes (ggml-common.h)
        ("iq2_xxs", .iq2_xxs, 16, 66), ("iq2_xs", .iq2_xs, 17, 74), ("iq2_s", .iq2_s, 22, 82), ("iq3_xxs", .iq3_xxs, 18, 98),
        ("iq3_s", .iq3_s, 21, 110), ("iq1_s", .iq1_s, 19, 50), ("iq1_m", .iq1_m, 29, 56),
    ]

    func testGeometryAndGGMLIds() {
        for (name, dtype, id, bytes) in Self.types {
            XCTAssertEqual(dtype.rawValue, name)
            XCTAssertEqual(dtype.ggmlType, id, name)
            XCTAssertEqual(DType(ggmlType: id), dtype, name)
            XCTAssertEqual(dtype.blockSize, 256, name)
            XCTAssertEqual(dtype.blockBytes, bytes, name)
            XCTAssertTrue(dtype.isLattice)
            XCTAssertEqual(pk_native_supported(dtype.kernelCode), 1, "\(name): native kernels (q8_K tokens)")
            XCTAssertEqual(pk_native_x_stride(dtype.kernelCode, 512), pk_native_x_stride(14, 512), "\(name): iq4_xs's q8_K token")
            XCTAssertEqual(pk_native_x_stride(dtype.kernelCode, 300), 0, "\(name): 300 columns")
        }
        XCTAssertEqual(Set(GGUFPyReference.dequantLattice.map(\.0)), Set(Self.types.map(\.0)))
    }

    /// Random blocks (and one of all 0xFF bytes) dequantised by gguf-py: the same f32 bits at every level.
    func testDequantMatchesGGUFPy() {
        for (name, hexBytes, hexValues) in GGUFPyReference.dequantLattice {
            let dtype = Self.types.first { $0.0 == name }!.1
            let bytes = [UInt8](hex: hexBytes), expected = floatsFromHex(hexValues)
            XCTAssertEqual(dtype.rowBytes(expected.count), bytes.count, name)
            SIMDLevels.each { level in
                var out = [Float](repeating: .nan, count: expected.count)
                pk_dequant_row(dtype.kernelCode, bytes, Int64(expected.count), &out)
                for i in 0..<expected.count where out[i].bitPattern != expected[i].bitPattern {
                    XCTFail("\(level) \(name) element \(i): \(out[i]) vs gguf-py \(expected[i])"); break
                }
            }
        }
    }

    /// Random valid rows: random bytes with a moderate f16 scale of either sign (IQ1_M: in its scale words' top nibbles).
    static func randomRows(_ dtype: DType, rows: Int, cols: Int, rng: inout TestRNG) -> [UInt8] {
        var w = (0..<(rows * dtype.rowBytes(cols)!)).map { _ in rng.byte() }
        for b in stride(from: 0, to: w.count, by: dtype.blockBytes) {
            let d = Float16((rng.uniform() - 0.5) * 0.004).bitPattern
            if dtype == .iq1_m {
                for k in 0..<4 { w[b + 49 + 2 * k] = (w[b + 49 + 2 * k] & 0x0F) | UInt8((d >> (4 * UInt16(k))) & 0xF) << 4 }
            } else {
                w[b] = UInt8(d & 0xFF); w[b + 1] = UInt8(d >> 8)
            }
        }
        return w
    }

    /// Products through every path a lattice type takes (one token: convert and dot; 2-8 tokens; the GEMM), against
    /// the converted rows times x in Double. Bound: recursive f32 summation of n products is within n u sum |w x|
    /// (u = 2^-24; Higham, Accuracy and Stability, 3.1), plus the f32 rounding of each product.
    func testMatmulAgainstConvertedRows() {
        var rng = TestRNG(31)
        let pool = ThreadPool(threads: 2)
        SIMDLevels.each { level in
            for (name, dtype, _, _) in Self.types {
                let rows = 37, cols = 512
                let w = Self.randomRows(dtype, rows: rows, cols: cols, rng: &rng)
                let rb = dtype.rowBytes(cols)!
                let deq = (0..<rows).map { r in w[(r * rb)..<((r + 1) * rb)].withUnsafeBytes { dtype.floats($0, count: cols)! } }
                for T in [1, 3, 8, 9] {
                    let x = (0..<(T * cols)).map { _ in rng.normal() }
                    var y = [Float](repeating: .nan, count: T * rows)
                    pk_matmul_rows(dtype.kernelCode, w, Int64(cols), x, Int64(cols), Int64(T), &y, Int64(rows), 0, Int64(rows))
                    for t in 0..<T {
                        for r in 0..<rows {
                            var exact = 0.0, size = 0.0
                            for c in 0..<cols { let p = Double(deq[r][c]) * Double(x[t * cols + c]); exact += p; size += abs(p) }
                            let bound = Double(cols + 1) * 0x1p-24 * size
                            XCTAssertEqual(Double(y[t * rows + r]), exact, accuracy: bound, "\(level) \(name) T \(T) token \(t) row \(r)")
                        }
                    }
                    var yExact = [Float](repeating: .nan, count: T * rows)
                    w.withUnsafeBytes { raw in
                        let m = WeightMatrix(data: raw.baseAddress!, dtype: dtype, rows: rows, cols: cols, owner: nil)
                        Ops.matmul(m, x, T: T, &yExact, precision: .exact, pool: pool)
                    }
                    XCTAssertEqual(yExact.map(\.bitPattern), y.map(\.bitPattern), "\(level) \(name) T \(T): Ops.matmul = pk_matmul_rows")
                }
            }
        }
    }

    /// Native precision: each token quantised to ggml's block_q8_K (NativeKQuantKernelTests checks those bytes), then
    /// ggml_vec_dot_<type>_q8_K's integers per super-block and f32 epilogue. Against the rows converted as gguf-py
    /// does times the prepared token's d * q, in Double. Bound, as for the K types (NativeKQuantKernelTests): exact
    /// integers, then per super-block d_w d_x, the conversion, the product (IQ1: the conversion of the shift sum and
    /// one addition more) and the f32 sum of nb terms, against a reference whose weights are rounded twice:
    /// (2 nb + 24) u M with M = sum |w x|. IQ1 keeps the grid part (|g| <= 1) and the shift part (1/8) apart, so M
    /// there is sum (|g| + 1/8) |scale x| <= 9/7 sum |w x| (|g + shift| >= 7/8 where g != 0).
    /// Also: the same bits at every level (the integers are exact and the f32 operations one sequence), for every
    /// row range and token count (each token alone), over rows of 18 super-blocks (a chunk of 16 and a rest), and through
    /// the VNNI tiles (T >= 3: 16-row tiles, chunks of 4 super-blocks, 9 with a rest of 1).
    func testNativeAgainstPreparedTokens() {
        var rng = TestRNG(32)
        for (name, dtype, _, _) in Self.types {
            let code = dtype.kernelCode, iq1 = dtype == .iq1_s || dtype == .iq1_m
            for (i, (rows, cols, T)) in [(7, 256, 1), (37, 512, 3), (5, 4608, 2), (9, 768, 9), (20, 2304, 5)].enumerated() {
                var w = Self.randomRows(dtype, rows: rows, cols: cols, rng: &rng)
                if i == 3 {   // a zero scale and a large one
                    let d0 = Float16(0).bitPattern, d1 = Float16(-3000).bitPattern
                    for (b, d) in [(0, d0), (1, d1)] where dtype != .iq1_m {
                        w[b * dtype.blockBytes] = UInt8(d & 0xFF); w[b * dtype.blockBytes + 1] = UInt8(d >> 8)
                    }
                }
                let rb = dtype.rowBytes(cols)!, ldy = rows + 1
                var x = [Float]()
                for t in 0..<T { x += NativeKQuantKernelTests.randomX(cols, mode: (i + t) % 5, rng: &rng) }
                let stride = Int(pk_native_x_stride(code, Int64(cols)))
                var xn = [UInt8](repeating: 0, count: stride * T)
                pk_native_prepare(code, x, Int64(cols), Int64(cols), &xn, 0, Int64(T))
                let xd: [[Double]] = (0..<T).map { t in
                    xn.withUnsafeBytes { p in
                        (0..<cols).map { c in
                            Double(p.load(fromByteOffset: t * stride + cols + 4 * (c / 256), as: Float.self)) * Double(Int8(bitPattern: p[t * stride + c]))
                        }
                    }
                }
                let deq = (0..<rows).map { r in w[(r * rb)..<((r + 1) * rb)].withUnsafeBytes { dtype.floats($0, count: cols)! } }
                var want = [[Double]](repeating: [Double](repeating: 0, count: rows), count: T), size = want
                for t in 0..<T {
                    for r in 0..<rows {
                        for c in 0..<cols { want[t][r] += Double(deq[r][c]) * xd[t][c]; size[t][r] += abs(Double(deq[r][c]) * xd[t][c]) }
                        if iq1 { size[t][r] *= 9.0 / 7.0 }
                    }
                }
                let k = Double(2 * (cols / 256) + 24) * 0x1p-24
                var ys = [Float](repeating: .nan, count: T * ldy)
                XCTAssertEqual(pk_simd_set_level("scalar"), 0)
                pk_matmul_rows_native(code, w, Int64(cols), xn, Int64(T), &ys, Int64(ldy), 0, Int64(rows))
                _ = pk_simd_set_level(nil)
                SIMDLevels.each { level in
                    let label = "\(level) \(name) \(rows) x \(cols) T \(T)"
                    checkRowRanges(rows: rows, T: T, ldy: ldy, label: label, multiply: { r0, r1, y in
                        pk_matmul_rows_native(code, w, Int64(cols), xn, Int64(T), &y, Int64(ldy), Int64(r0), Int64(r1))
                        for t in 0..<T {   // the same bits as the portable level, and as each token alone
                            var y1 = [Float](repeating: .nan, count: ldy)
                            xn.withUnsafeBytes { p in
                                pk_matmul_rows_native(code, w, Int64(cols), p.baseAddress! + t * stride, 1, &y1, Int64(ldy), Int64(r0), Int64(r1))
                            }
                            for r in r0..<r1 where y[t * ldy + r].bitPattern != ys[t * ldy + r].bitPattern || y1[r].bitPattern != ys[t * ldy + r].bitPattern {
                                XCTFail("\(label) t \(t) r \(r): \(y[t * ldy + r]), alone \(y1[r]), portable \(ys[t * ldy + r])"); return
                            }
                        }
                    }, expect: { t, r in (want[t][r], k * size[t][r] + 1e-30) })
                }
            }
        }
    }
}
