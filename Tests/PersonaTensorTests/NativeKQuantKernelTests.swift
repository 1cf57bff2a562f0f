import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

/// `.native` precision of q2_K, q3_K, q4_K, q5_K, q6_K and iq4_xs: each token quantised to ggml's block_q8_K
/// (checked bit for bit against `referenceQ8K`, ggml's quantize_row_q8_K_ref written again here), then the
/// products of ggml_vec_dot_<type>_q8_K. Checked at every SIMD level against the weights dequantised by the
/// portable reference times the prepared token's d * q, in Double, and against the scalar level.
///
/// Bound: the kernels compute, per 256-value super-block, exact integer sums I (scales and mins applied in
/// integers) and then d_w * d_x * I in f32: the product of scales, the conversion of I and the product each round
/// once (3u, u = 2^-24), and the f32 sum of at most 2 nb terms adds at most 2 nb + 16 roundings in any lane /
/// block order. The reference's dequantisation rounds each weight at most 3 times (d * sc, times q, minus
/// dmin * m). With M = sum over values of (|d sc q| + |dmin m|) * |x| (which bounds every term's magnitude, so
/// cancellation in the dequantised weight does not hide the rounding), |native - reference| <= (2 nb + 24) u M.
final class NativeKQuantKernelTests: XCTestCase {
    /// (name, dtype code, block bytes, offset of the f16 d, offset of the f16 dmin or nil)
    static let types: [(String, Int32, Int, Int, Int?)] = [
        ("q2_K", 10, 84, 80, 82), ("q3_K", 11, 110, 108, nil), ("q4_K", 5, 144, 0, 2),
        ("q5_K", 12, 176, 0, 2), ("q6_K", 6, 210, 208, nil), ("iq4_xs", 14, 136, 0, nil),
    ]

    static func putF16(_ b: inout [UInt8], _ o: Int, _ v: Float) {
        let h = Float16(v).bitPattern
        b[o] = UInt8(h & 0xFF); b[o + 1] = UInt8(h >> 8)
    }

    /// Random bytes with the f16 scale fields set to finite values: small ones, or (extreme) also zero, near the
    /// f16 maximum, and tiny ones.
    static func randomRows(_ t: (String, Int32, Int, Int, Int?), rows: Int, cols: Int, extreme: Bool, rng: inout TestRNG) -> [UInt8] {
        let nblocks = rows * cols / 256
        var w = (0..<(nblocks * t.2)).map { _ in rng.byte() }
        for b in 0..<nblocks {
            var d = (rng.uniform() * 2 - 1) * 0.01, m = rng.uniform() * 0.01
            if extreme {
                switch rng.next() % 6 {
                case 0: d = 0
                case 1: d = rng.uniform() < 0.5 ? 60000 : -60000
                case 2: d = 3e-7
                case 3: m = 65000
                default: break
                }
            }
            putF16(&w, b * t.2 + t.3, d)
            if let mo = t.4 { putF16(&w, b * t.2 + mo, m) }
        }
        return w
    }

    /// ggml's quantize_row_q8_K_ref: per 256 values, the signed value of largest magnitude (the first one),
    /// iscale = -127 / max, q = nearest (ties to even) of iscale * x, at most 127, d = 1 / iscale; all zero: d = 0.
    static func referenceQ8K(_ x: [Float]) -> (d: [Float], q: [Int8], bsums: [Int16]) {
        var d: [Float] = [], q: [Int8] = [], bs: [Int16] = []
        for b in 0..<(x.count / 256) {
            let xb = Array(x[(b * 256)..<(b * 256 + 256)])
            var mx: Float = 0, amax: Float = 0
            for v in xb where abs(v) > amax { amax = abs(v); mx = v }
            if amax == 0 {
                d.append(0); q += [Int8](repeating: 0, count: 256); bs += [Int16](repeating: 0, count: 16)
                continue
            }
            let iscale: Float = -127 / mx
            let qb = xb.map { v -> Int8 in Int8(min(127, Int((iscale * v).rounded(.toNearestOrEven)))) }
            q += qb
            for j in 0..<16 { bs.append(Int16(qb[(j * 16)..<(j * 16 + 16)].reduce(0) { $0 + Int($1) })) }
            d.append(1 / iscale)
        }
        return (d, q, bs)
    }

    static func randomX(_ n: Int, mode: Int, rng: inout TestRNG) -> [Float] {
        var x = (0..<n).map { _ in rng.normal() * 2 }
        if n >= 512 { for i in 256..<512 { x[i] = 0 } }   // an all-zero block: d = 0
        switch mode {
        case 1: x[3] = 1e6; x[7] = -1e6; x[11] = 63.5   // outliers: most q are 0
        case 2:   // max 127 -> iscale = -1: every half-integer is a tie
            for i in 0..<256 { x[i] = Float(Int(rng.next() % 254) - 127) + 0.5 }
            x[0] = 127
        case 3: x[0] = -x.map(abs).max()! * 2   // the largest magnitude negative
        case 4:   // the largest magnitude twice, with opposite signs: the first one sets the sign of d
            let m = x.map(abs).max()! * 2
            x[5] = -m; x[9] = m
            if n >= 768 { x[520] = m; x[700] = -m }
        default: break
        }
        return x
    }

    /// Byte offsets in a prepared token: q at 0, d at cols, bsums at cols + round32(4 nb).
    static func layout(_ cols: Int) -> (d: Int, bsums: Int) { (cols, cols + (cols / 256 * 4 + 31) / 32 * 32) }

    func testStrideContract() {
        for t in Self.types {
            for cols in [256, 512, 4864] {
                let s = pk_native_x_stride(t.1, Int64(cols))
                XCTAssertEqual(s % 64, 0, t.0)
                XCTAssertGreaterThanOrEqual(s, cols + cols / 256 * 36, t.0)
                XCTAssertEqual(pk_native_supported(t.1), 1, t.0)
            }
            for cols in [0, -256, 128, 300] { XCTAssertEqual(pk_native_x_stride(t.1, Int64(cols)), 0, "\(t.0) cols \(cols)") }
        }
    }

    func testPreparedQ8KMatchesGGMLQuantisation() {
        var rng = TestRNG(21)
        SIMDLevels.each { level in
            for t in Self.types {
                for cols in [256, 768] {
                    for mode in 0..<5 {
                        let x = Self.randomX(cols, mode: mode, rng: &rng)
                        let stride = pk_native_x_stride(t.1, Int64(cols))
                        var buf = [UInt8](repeating: 0xAA, count: stride)
                        pk_native_prepare(t.1, x, Int64(cols), Int64(cols), &buf, 0, 1)
                        let (d, q, bs) = Self.referenceQ8K(x)
                        let (od, ob) = Self.layout(cols)
                        let label = "\(level) \(t.0) cols \(cols) mode \(mode)"
                        buf.withUnsafeBytes { p in
                            for b in 0..<(cols / 256) {
                                XCTAssertEqual(p.load(fromByteOffset: od + 4 * b, as: Float.self).bitPattern, d[b].bitPattern, "\(label) d[\(b)]")
                            }
                            for j in 0..<(cols / 16) where p.load(fromByteOffset: ob + 2 * j, as: Int16.self) != bs[j] {
                                XCTFail("\(label) bsums[\(j)]"); break
                            }
                            for i in 0..<cols where Int8(bitPattern: p[i]) != q[i] {
                                XCTFail("\(label) q[\(i)] \(Int8(bitPattern: p[i])) vs \(q[i])"); break
                            }
                        }
                    }
                }
            }
        }
    }

    func check(_ t: (String, Int32, Int, Int, Int?), rows: Int, cols: Int, T: Int, extreme: Bool, mode: Int, rng: inout TestRNG) {
        let w = Self.randomRows(t, rows: rows, cols: cols, extreme: extreme, rng: &rng)
        let rb = Int(pk_row_bytes(t.1, Int64(cols)))
        XCTAssertEqual(rb, cols / 256 * t.2)
        let ldx = cols + 5, ldy = rows + 2, nb = cols / 256
        var x = [Float](repeating: .nan, count: T * ldx)
        for tk in 0..<T { for (c, v) in Self.randomX(cols, mode: mode, rng: &rng).enumerated() { x[tk * ldx + c] = v } }
        let stride = pk_native_x_stride(t.1, Int64(cols))
        var xn = [UInt8](repeating: 0, count: stride * T)
        pk_native_prepare(t.1, x, Int64(ldx), Int64(cols), &xn, 0, Int64(T / 2))   // in two token ranges, as the pool does
        pk_native_prepare(t.1, x, Int64(ldx), Int64(cols), &xn, Int64(T / 2), Int64(T))
        // the prepared activations as Double: d * q
        let od = Self.layout(cols).d
        let xd: [[Double]] = (0..<T).map { tk in
            xn.withUnsafeBytes { p in
                (0..<cols).map { c in
                    Double(p.load(fromByteOffset: tk * stride + od + 4 * (c / 256), as: Float.self)) * Double(Int8(bitPattern: p[tk * stride + c]))
                }
            }
        }
        var want = [[Double]](repeating: [Double](repeating: 0, count: rows), count: T), size = want
        var wf = [Float](repeating: 0, count: cols), wa = wf, wm = wf
        for r in 0..<rows {
            var row = Array(w[(r * rb)..<((r + 1) * rb)])
            pk_dequant_row_scalar(t.1, row, Int64(cols), &wf)
            if let mo = t.4 {   // the scale part (dmin = 0) and the min part (d = 0) separately
                var a = row, m = row
                for b in 0..<nb { a[b * t.2 + mo] = 0; a[b * t.2 + mo + 1] = 0; m[b * t.2 + t.3] = 0; m[b * t.2 + t.3 + 1] = 0 }
                pk_dequant_row_scalar(t.1, a, Int64(cols), &wa)
                pk_dequant_row_scalar(t.1, m, Int64(cols), &wm)
            } else {
                wa = wf
                for i in 0..<cols { wm[i] = 0 }
            }
            row.removeAll()
            for tk in 0..<T {
                var s = 0.0, m = 0.0
                for c in 0..<cols {
                    s += Double(wf[c]) * xd[tk][c]
                    m += (abs(Double(wa[c])) + abs(Double(wm[c]))) * abs(xd[tk][c])
                }
                want[tk][r] = s; size[tk][r] = m
            }
        }
        let k = Double(2 * nb + 24) * Double(Float.ulpOfOne) / 2
        let label = "\(String(cString: pk_simd_level())) \(t.0) cols \(cols) extreme \(extreme) mode \(mode)"
        checkRowRanges(rows: rows, T: T, ldy: ldy, label: label, multiply: { r0, r1, y in
            pk_matmul_rows_native(t.1, w, Int64(cols), xn, Int64(T), &y, Int64(ldy), Int64(r0), Int64(r1))
        }, expect: { tk, r in (want[tk][r], k * size[tk][r] + 1e-30) })
        // against the portable level: both within the bound of the reference, so within twice it of each other
        let level = String(cString: pk_simd_level())
        if level != "scalar" {
            var y = [Float](repeating: 0, count: T * ldy), ys = y
            pk_matmul_rows_native(t.1, w, Int64(cols), xn, Int64(T), &y, Int64(ldy), 0, Int64(rows))
            XCTAssertEqual(pk_simd_set_level("scalar"), 0)
            pk_matmul_rows_native(t.1, w, Int64(cols), xn, Int64(T), &ys, Int64(ldy), 0, Int64(rows))
            XCTAssertEqual(pk_simd_set_level(level), 0)
            for tk in 0..<T {
                for r in 0..<rows where !(abs(Double(y[tk * ldy + r]) - Double(ys[tk * ldy + r])) <= 2 * k * size[tk][r] + 1e-30) {
                    XCTFail("\(label) vs scalar t \(tk) r \(r): \(y[tk * ldy + r]) vs \(ys[tk * ldy + r])"); return
                }
            }
        }
    }

    func testNativeKQuantsEveryLevel() {
        var rng = TestRNG(22)
        SIMDLevels.each { _ in
            for t in Self.types {
                for (i, T) in [1, 2, 3, 5, 17].enumerated() {
                    check(t, rows: 7, cols: 256, T: T, extreme: false, mode: i % 4, rng: &rng)
                    check(t, rows: 6, cols: 1024, T: T, extreme: i % 2 == 1, mode: (i + 1) % 4, rng: &rng)
                    check(t, rows: 5, cols: 2304, T: T, extreme: true, mode: (i + 2) % 4, rng: &rng)
                }
            }
        }
    }

    /// Rows of one pool chunk need not start at a multiple of anything, and many rows at T = 1 (the decode path).
    func testNativeKQuantsManyRowsDecode() {
        var rng = TestRNG(23)
        SIMDLevels.each { _ in
            for t in Self.types { check(t, rows: 37, cols: 512, T: 1, extreme: false, mode: 0, rng: &rng) }
        }
    }

    /// Prefill: VNNI tiles of 16 rows (two full, one partial, and odd row ranges through checkRowRanges), AVX2 tiles
    /// of 8 rows, chunks of super-blocks (2304 columns: 9), micro-kernels of 1-8 tokens (VNNI, T = 9, 13: 8 + 1,
    /// 8 + 5) and 1-4 tokens (AVX2).
    func testNativeKQuantsManyRowsPrefill() {
        var rng = TestRNG(24)
        SIMDLevels.each { _ in
            for t in Self.types {
                check(t, rows: 37, cols: 2304, T: 9, extreme: true, mode: 1, rng: &rng)
                check(t, rows: 21, cols: 1280, T: 13, extreme: false, mode: 3, rng: &rng)
            }
        }
    }

    /// Identical bits at every level and every T: the T-token product against the scalar level and against each
    /// token alone (T = 1), over T values on both sides of the tiles' cut-over and odd row ranges.
    func testNativeKQuantsBitsIndependentOfLevelAndT() {
        var rng = TestRNG(25)
        let rows = 35, cols = 1536, ldy = rows + 1
        for t in Self.types {
            let w = Self.randomRows(t, rows: rows, cols: cols, extreme: true, rng: &rng)
            for T in [2, 3, 4, 5, 8, 9, 20] {
                var x = [Float]()
                for _ in 0..<T { x += Self.randomX(cols, mode: T % 4, rng: &rng) }
                let stride = pk_native_x_stride(t.1, Int64(cols))
                var xn = [UInt8](repeating: 0, count: stride * T)
                pk_native_prepare(t.1, x, Int64(cols), Int64(cols), &xn, 0, Int64(T))
                let level = String(cString: pk_simd_level())
                XCTAssertEqual(pk_simd_set_level("scalar"), 0)
                var ys = [Float](repeating: 0, count: T * ldy)
                pk_matmul_rows_native(t.1, w, Int64(cols), xn, Int64(T), &ys, Int64(ldy), 0, Int64(rows))
                XCTAssertEqual(pk_simd_set_level(level), 0)
                SIMDLevels.each { lv in
                    for (r0, r1) in [(0, rows), (3, 34)] {
                        var y = [Float](repeating: 0, count: T * ldy)
                        pk_matmul_rows_native(t.1, w, Int64(cols), xn, Int64(T), &y, Int64(ldy), Int64(r0), Int64(r1))
                        for tk in 0..<T {
                            var y1 = [Float](repeating: 0, count: ldy)
                            xn.withUnsafeBytes { p in
                                pk_matmul_rows_native(t.1, w, Int64(cols), p.baseAddress! + tk * stride, 1, &y1, Int64(ldy), Int64(r0), Int64(r1))
                            }
                            for r in r0..<r1 where y[tk * ldy + r].bitPattern != ys[tk * ldy + r].bitPattern
                                || y1[r].bitPattern != ys[tk * ldy + r].bitPattern {
                                XCTFail("\(lv) \(t.0) T \(T) [\(r0),\(r1)) t \(tk) r \(r): \(y[tk * ldy + r]), T = 1 \(y1[r]), scalar \(ys[tk * ldy + r])")
                                return
                            }
                        }
                    }
                }
            }
        }
    }
}
