import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

/// `Ops.matmul(w0, y0, w1, y1, w2, y2, x:)`, the q / k / v and gate / up products with one hand-off to the pool and
/// one preparation of x: every output the same bits as one `Ops.matmul` per matrix, in both precisions, at every
/// SIMD level, for T = 1 (the prepared exact and native decode paths), small T and a prompt's T (token-parallel
/// rounding), and matrices of different types (which must go one by one).
final class GroupedMatmulTests: XCTestCase {
    /// A random matrix in its own allocation (freed by the caller): WeightMatrix does not own test bytes.
    static func matrix(_ name: String, rows: Int, cols: Int, rng: inout TestRNG) -> WeightMatrix {
        let code = KernelTests.dtypes.first { $0.0 == name }!.1
        let dtype = DType.allCases.first { $0.kernelCode == code }!
        let bytes = KernelTests.randomRows(name, rows: rows, cols: cols, rng: &rng)
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return WeightMatrix(data: p, dtype: dtype, rows: rows, cols: cols, owner: nil)
    }

    func check(_ types: [String], cols: Int, T: Int, precision: MatmulPrecision, pool: ThreadPool, label: String, rng: inout TestRNG) {
        let w = zip(types, [96, 40, 200]).map { Self.matrix($0.0, rows: $0.1, cols: cols, rng: &rng) }
        defer { w.forEach { UnsafeMutableRawPointer(mutating: $0.data).deallocate() } }
        let x = (0..<(T * cols)).map { _ in rng.normal() }
        var one = w.map { [Float](repeating: .nan, count: T * $0.rows) }
        for i in w.indices { Ops.matmul(w[i], x, T: T, &one[i], precision: precision, pool: pool) }
        let y = w.map { m -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: T * m.rows)
            p.initialize(repeating: .nan, count: T * m.rows)
            return p
        }
        defer { y.forEach { $0.deallocate() } }
        if w.count == 3 {
            Ops.matmul(w[0], y[0], w[1], y[1], w[2], y[2], x: x, T: T, precision: precision, pool: pool)
        } else {
            Ops.matmul(w[0], y[0], w[1], y[1], x: x, T: T, precision: precision, pool: pool)
        }
        let grouped = w.indices.map { Array(UnsafeBufferPointer(start: y[$0], count: T * w[$0].rows)) }
        for i in w.indices {
            XCTAssertFalse(grouped[i].contains { $0.isNaN }, "\(label): matrix \(i) has rows left unwritten")
            if let j = (0..<one[i].count).first(where: { one[i][$0].bitPattern != grouped[i][$0].bitPattern }) {
                XCTFail("\(label): matrix \(i) value \(j): grouped \(grouped[i][j]), alone \(one[i][j])")
            }
        }
    }

    func testGroupedEqualsOneByOne() {
        var rng = TestRNG(17)
        let pool = ThreadPool(threads: 3)   // more chunks than threads, and an odd split
        SIMDLevels.each { level in
            for precision in [MatmulPrecision.exact, .native] {
                for T in [1, 3, 20] {
                    for types in [["q4_1", "q4_1", "q4_1"], ["q4_k", "q4_k"], ["q8_0", "q8_0", "q8_0"], ["bf16", "bf16", "bf16"],
                                  ["f32", "f32"], ["q4_k", "q4_k", "q6_k"], ["q5_0", "q8_0"]] {
                        check(types, cols: 512, T: T, precision: precision, pool: pool,
                              label: "\(level) \(precision) T \(T) \(types)", rng: &rng)
                    }
                }
            }
        }
    }
}
