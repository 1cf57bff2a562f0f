import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

/// The importance-matrix lattice types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M): read as stored, widened
/// to f32 bit for bit as gguf-py does, multiplied in exact precision at every SIMD level.
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
            XCTAssertEqual(pk_native_supported(dtype.kernelCode), 0, "\(name): no native kernels")
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
    /// `Ops.matmul` in native precision equals exact precision bit for bit (no native kernels for these types).
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
                    var yExact = [Float](repeating: .nan, count: T * rows), yNative = yExact
                    w.withUnsafeBytes { raw in
                        let m = WeightMatrix(data: raw.baseAddress!, dtype: dtype, rows: rows, cols: cols, owner: nil)
                        Ops.matmul(m, x, T: T, &yExact, precision: .exact, pool: pool)
                        Ops.matmul(m, x, T: T, &yNative, precision: .native, pool: pool)
                    }
                    XCTAssertEqual(yNative.map(\.bitPattern), yExact.map(\.bitPattern), "\(level) \(name) T \(T): native = exact")
                    XCTAssertEqual(yExact.map(\.bitPattern), y.map(\.bitPattern), "\(level) \(name) T \(T): Ops.matmul = pk_matmul_rows")
                }
            }
        }
    }
}
