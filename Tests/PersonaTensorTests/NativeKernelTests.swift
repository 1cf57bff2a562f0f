import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

/// `.native` precision: activations rounded as llama.cpp does (q8_0 per block, bf16, f16), checked against a reference
/// written here that rounds the same way (ggml's quantize_row_q8_0 via `referenceQuantizeQ8_0`, bf16 by
/// `Float.rounded`), with exact products in Double. Tolerances are worst-case f32 summation bounds.
final class NativeKernelTests: XCTestCase {
    static let q8: Int32 = 3, bf16: Int32 = 2, f16: Int32 = 1

    /// bf16 rounding (nearest, ties to even) without bit tricks, for normal numbers.
    static func bf16Round(_ x: Float) -> Float {
        guard x != 0, x.isFinite else { return x }
        let ulp = Float(sign: .plus, exponent: x.exponent - 7, significand: 1)
        return (x / ulp).rounded(.toNearestOrEven) * ulp
    }

    /// What pk_native_prepare must write for one q8_0 token, from the independent reference quantiser.
    static func referenceQ8Token(_ x: [Float]) -> (d: [Float], q: [Int8]) {
        let blocks = referenceQuantizeQ8_0(x)
        var d: [Float] = [], q: [Int8] = []
        for b in 0..<(x.count / 32) {
            d.append(ReferenceDequant.f16(ReferenceDequant.u16(blocks, b * 34)))
            for i in 0..<32 { q.append(Int8(bitPattern: blocks[b * 34 + 2 + i])) }
        }
        return (d, q)
    }

    static func randomX(_ n: Int, rng: inout TestRNG) -> [Float] {
        var x = (0..<n).map { _ in rng.normal() * 2 }
        if n >= 64 { for i in 32..<64 { x[i] = 0 } }   // an all-zero block: scale 0
        return x
    }

    func testPreparedQ8MatchesGGMLQuantisation() {
        var rng = TestRNG(11)
        SIMDLevels.each { level in
            for cols in [32, 96, 288] {
                var x = Self.randomX(cols, rng: &rng)
                if cols == 288 { x[5] = 127.0 / 2 * 0.02; x[6] = -0.02 * 127; x[7] = 0.02 * 126.5 }   // ties after scaling
                let stride = pk_native_x_stride(Self.q8, Int64(cols))
                XCTAssertEqual(stride % 64, 0)
                var buf = [UInt8](repeating: 0xAA, count: stride)
                pk_native_prepare(Self.q8, x, Int64(cols), Int64(cols), &buf, 0, 1)
                let (d, q) = Self.referenceQ8Token(x)
                let nb = cols / 32
                buf.withUnsafeBytes { p in
                    for b in 0..<nb {
                        XCTAssertEqual(p.load(fromByteOffset: 4 * b, as: Float.self), d[b], "\(level) cols \(cols) scale \(b)")
                        let sum = q[(b * 32)..<(b * 32 + 32)].reduce(0) { $0 + Int32($1) }
                        XCTAssertEqual(p.load(fromByteOffset: 4 * nb + 4 * b, as: Int32.self), -128 * sum, "\(level) block sum \(b)")
                    }
                    for i in 0..<cols where Int8(bitPattern: p[8 * nb + i]) != q[i] {
                        XCTFail("\(level) cols \(cols) q[\(i)] \(Int8(bitPattern: p[8 * nb + i])) vs \(q[i])"); break
                    }
                }
            }
        }
    }

    /// Rows `w` (stored bytes) against x: checks pk_matmul_rows_native for every token and row, and that nothing
    /// outside [r0, r1) is written.
    func checkNative(_ dtype: Int32, rows: Int, cols: Int, T: Int, rng: inout TestRNG, level: String) {
        let name = dtype == Self.q8 ? "q8_0" : dtype == Self.bf16 ? "bf16" : "f16"
        let w = KernelTests.randomRows(name, rows: rows, cols: cols, rng: &rng)
        let rb = Int(pk_row_bytes(dtype, Int64(cols)))
        let ldx = cols + 3, ldy = rows + 2
        var x = [Float](repeating: .nan, count: T * ldx)
        for t in 0..<T { for (c, v) in Self.randomX(cols, rng: &rng).enumerated() { x[t * ldx + c] = v } }
        let stride = pk_native_x_stride(dtype, Int64(cols))
        var xn = [UInt8](repeating: 0, count: stride * T)
        // prepared in two token ranges, as the pool does
        pk_native_prepare(dtype, x, Int64(ldx), Int64(cols), &xn, 0, Int64(T / 2))
        pk_native_prepare(dtype, x, Int64(ldx), Int64(cols), &xn, Int64(T / 2), Int64(T))
        // reference: the rounded activations, exact products, Double sums
        var want = [[Double]](repeating: [Double](repeating: 0, count: rows), count: T)
        var size = want
        for t in 0..<T {
            let xt = Array(x[(t * ldx)..<(t * ldx + cols)])
            for r in 0..<rows {
                let wr = Array(w[(r * rb)..<((r + 1) * rb)])
                var s = 0.0, m = 0.0
                if dtype == Self.q8 {
                    let (d, q) = Self.referenceQ8Token(xt)
                    for b in 0..<(cols / 32) {
                        let dw = Double(ReferenceDequant.f16(ReferenceDequant.u16(wr, b * 34)))
                        var isum = 0, asum = 0
                        for i in 0..<32 {
                            let p = Int(Int8(bitPattern: wr[b * 34 + 2 + i])) * Int(q[b * 32 + i])
                            isum += p; asum += abs(p)
                        }
                        s += dw * Double(d[b]) * Double(isum)
                        m += abs(dw * Double(d[b])) * Double(asum)
                    }
                } else {
                    for c in 0..<cols {
                        let xr = name == "f16" ? pk_f16_to_f32(pk_f32_to_f16(xt[c])) : Self.bf16Round(xt[c])
                        let p = Double(ReferenceDequant.element(name, wr, c)) * Double(xr)
                        s += p; m += abs(p)
                    }
                }
                want[t][r] = s; size[t][r] = m
            }
        }
        // Roundings a term can go through: q8_0 - the scale product, the product with the block's integer sum,
        // and fewer than nb + 16 additions (lanes, blocks, column chunks); bf16 and f16 - exact products, at most
        // cols + 4 additions in any order.
        let depth = dtype == Self.q8 ? cols / 32 + 16 : cols + 4
        checkRowRanges(rows: rows, T: T, ldy: ldy, label: "\(level) \(name) rows \(rows) cols \(cols)", multiply: { r0, r1, y in
            pk_matmul_rows_native(dtype, w, Int64(cols), xn, Int64(T), &y, Int64(ldy), Int64(r0), Int64(r1))
        }, expect: { t, r in (want[t][r], Double(depth) * Double(Float.ulpOfOne) / 2 * size[t][r] + 1e-30) })
    }

    func testNativeQ8OddSizesEveryLevel() {
        var rng = TestRNG(12)
        SIMDLevels.each { level in
            for cols in [32, 96, 288, 33 * 32] {   // 33 blocks: crosses the 32-block packed chunk
                // T > 1 runs packed tiles of 4 (AVX2) or 8 (VNNI) tokens: whole ones, and 1, 2, 3 left over
                for T in [1, 2, 3, 5, 6, 7, 17] {
                    for rows in [1, 5, 21, 37] { checkNative(Self.q8, rows: rows, cols: cols, T: T, rng: &rng, level: level) }
                }
            }
        }
    }

    /// f16 weights: x rounded to f16; decode steps multiply its f16 bits (ops->native_f16), prompts its f32 copy.
    func testNativeF16OddSizesEveryLevel() {
        var rng = TestRNG(16)
        SIMDLevels.each { level in
            for cols in [1, 7, 67, 300, 1029, 2100, 8192] {   // tails of 16 / 8 / 1, and the 8192-wide down projection
                for T in [1, 2, 3, 17] {
                    for rows in [1, 5, 21] { checkNative(Self.f16, rows: rows, cols: cols, T: T, rng: &rng, level: level) }
                }
            }
        }
    }

    func testNativeBF16OddSizesEveryLevel() {
        var rng = TestRNG(13)
        SIMDLevels.each { level in
            for cols in [1, 7, 67, 300, 1029, 2100] {   // 2100: three 1024-column chunks of the GEMM
                for T in [1, 2, 3, 5, 17] {
                    for rows in [1, 5, 21, 37] { checkNative(Self.bf16, rows: rows, cols: cols, T: T, rng: &rng, level: level) }
                }
            }
        }
    }

    /// The largest block sums the sign trick meets: weights all -128 or all 127 against q = +127 or -127
    /// everywhere (vpmaddubsw pair sums of +-32512). d_w = 1 and these d_x make every product and sum exact.
    func testNativeQ8LargestSums() {
        let cols = 64, rows = 13, T = 7, nb = cols / 32
        for wv: Int8 in [-128, 127] {
            var w = [UInt8](repeating: UInt8(bitPattern: wv), count: rows * nb * 34)
            let one = Float16(1).bitPattern
            for blk in 0..<(rows * nb) { w[blk * 34] = UInt8(one & 0xFF); w[blk * 34 + 1] = UInt8(one >> 8) }
            var x = [Float](repeating: 0, count: T * cols)
            for t in 0..<T { for c in 0..<cols { x[t * cols + c] = t % 2 == 0 ? 1 : -1 } }
            SIMDLevels.each { level in
                var xn = [UInt8](repeating: 0, count: pk_native_x_stride(Self.q8, Int64(cols)) * T)
                pk_native_prepare(Self.q8, x, Int64(cols), Int64(cols), &xn, 0, Int64(T))
                let dx = Float(Float16(Float(1) / 127))
                for T1 in [1, 2, 3, 5, 7] {
                    var y = [Float](repeating: 0, count: T1 * rows)
                    pk_matmul_rows_native(Self.q8, w, Int64(cols), xn, Int64(T1), &y, Int64(rows), 0, Int64(rows))
                    for t in 0..<T1 {
                        let want = Float(nb * 32 * Int(wv) * (t % 2 == 0 ? 127 : -127)) * dx
                        for r in 0..<rows where y[t * rows + r] != want {
                            XCTFail("\(level) w \(wv) T \(T1) t \(t) r \(r): \(y[t * rows + r]) vs \(want)"); return
                        }
                    }
                }
            }
        }
    }

    /// Through Ops.matmul (rounding spread over the pool, row chunks on two threads): `.native` differs from
    /// `.exact` by at most what rounding the activations can change - bf16: |x - bf16(x)| <= 2^-8 |x|; q8_0:
    /// |x - d_x q| <= d/2 + 127 |d - f16(d)| <= (1/2 + 127 * 2^-11) amax/127 per element - plus both results'
    /// f32 rounding.
    func testNativeAgainstExactWithinActivationRounding() {
        var rng = TestRNG(14)
        let pool = ThreadPool(threads: 2)
        let rows = 333, cols = 640, T = 19
        let v = (0..<(rows * cols)).map { _ in rng.normal() * 0.05 }
        let x = (0..<(T * cols)).map { _ in rng.normal() }
        SIMDLevels.each { level in
            for dt in [DType.bf16, .q8_0] {
                let m = WeightMatrix.from(v, rows: rows, cols: cols, dtype: dt)
                let wf = m.toFloatArray()
                for tt in [1, T] {
                    var ye = [Float](repeating: 0, count: tt * rows), yn = ye
                    Ops.matmul(m, x, T: tt, &ye, precision: .exact, pool: pool)
                    Ops.matmul(m, x, T: tt, &yn, precision: .native, pool: pool)
                    for t in 0..<tt {
                        for r in 0..<rows {
                            var bound = 0.0, size = 0.0
                            for b in 0..<(cols / 32) {
                                let xb = x[(t * cols + b * 32)..<(t * cols + b * 32 + 32)]
                                let amax = Double(xb.map { abs($0) }.max()!)
                                for i in 0..<32 {
                                    let wa = Double(abs(wf[r * cols + b * 32 + i])), xa = Double(abs(xb[xb.startIndex + i]))
                                    bound += dt == .bf16 ? wa * xa * 0x1p-8 : wa * (0.5 + 127 * 0x1p-11) * amax / 127
                                    size += wa * (xa + amax / 127)
                                }
                            }
                            bound += 2 * Double(cols + 4) * Double(Float.ulpOfOne) / 2 * size
                            let diff = abs(Double(yn[t * rows + r]) - Double(ye[t * rows + r]))
                            if !(diff <= bound) { XCTFail("\(level) \(dt) T \(tt) t \(t) r \(r): native \(yn[t * rows + r]) exact \(ye[t * rows + r]) bound \(bound)"); return }
                        }
                    }
                    // the rounding is really applied: .native is not silently .exact
                    XCTAssertNotEqual(ye, yn, "\(level) \(dt) T \(tt): native equals exact")
                }
            }
        }
    }

    /// f32 weights compute as `.exact`; f16 weights as `.exact` on the activations rounded to f16 (nearest even), as
    /// ggml's f16 products take them: bit for bit for a prompt (the same kernels); a decode step multiplies the f16
    /// bits in its own order (testNativeF16OddSizesEveryLevel checks it against a Double sum).
    func testNativeF32IsExactAndF16RoundsActivations() {
        var rng = TestRNG(15)
        let rows = 40, cols = 96
        let v = (0..<(rows * cols)).map { _ in rng.normal() }
        for T in [1, 3] {
            let x = (0..<(T * cols)).map { _ in rng.normal() }
            let rounded = x.map { pk_f16_to_f32(pk_f32_to_f16($0)) }
            for dt in [DType.f32, .f16] {
                let m = WeightMatrix.from(v, rows: rows, cols: cols, dtype: dt)
                var ye = [Float](repeating: 0, count: T * rows), yn = ye, yr = ye
                Ops.matmul(m, x, T: T, &ye, precision: .exact)
                Ops.matmul(m, x, T: T, &yn, precision: .native)
                Ops.matmul(m, rounded, T: T, &yr, precision: .exact)
                if dt == .f32 {
                    XCTAssertEqual(ye, yn, "f32 T \(T)")
                } else {
                    if T > 1 { XCTAssertEqual(yn, yr, "f16 T \(T): native is exact on the f16-rounded activations") }
                    XCTAssertNotEqual(ye, yn, "f16 T \(T): the rounding is applied")
                }
            }
        }
        XCTAssertEqual(pk_native_supported(0), 0)
        XCTAssertEqual(pk_native_x_stride(Self.q8, 33), 0, "q8_0 needs whole blocks")
    }

    /// The scratch grows only: a decode step after a prompt reuses it without allocating.
    func testThreadScratchGrowsOnly() {
        let a = pk_thread_scratch(100_000)
        XCTAssertNotNil(a)
        XCTAssertEqual(Int(bitPattern: a) % 64, 0)
        XCTAssertEqual(pk_thread_scratch(1_000), a)
        XCTAssertEqual(pk_thread_scratch(100_000), a)
    }
}
