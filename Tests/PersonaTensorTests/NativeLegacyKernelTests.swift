import CPersonaKernels
import Foundation
import XCTest

/// `.native` products of the legacy quant types (kernels_native_legacy.c): q4_0, q5_0, iq4_nl against q8_0
/// activations and q4_1, q5_1 against q8_1 activations, as llama.cpp computes them. The prepared activations are
/// checked bit for bit against ggml's quantisers written out here; the products at every SIMD level against an
/// independent reference: the weight row dequantised by pk_dequant_row_scalar times the decoded activations d * q,
/// in Double, plus (q8_1) the difference ggml's f16 s makes to the m term.
final class NativeLegacyKernelTests: XCTestCase {
    static let types: [(name: String, code: Int32)] = [("q4_0", 4), ("q4_1", 7), ("q5_0", 8), ("q5_1", 9), ("iq4_nl", 13)]
    static func isQ81(_ code: Int32) -> Bool { code == 7 || code == 9 }
    /// The unsigned-code offset whose correction the q8_0 types' aux word carries.
    static func offset(_ code: Int32) -> Int32 { code == 4 ? 8 : code == 8 ? 16 : 128 }

    /// One token quantised as ggml does: q8_0 (quantize_row_q8_0_ref) or q8_1 (quantize_row_q8_1_ref, which also
    /// keeps s = f16(d * sum(q)) with the f32 d). d and s as the f32 values of their f16.
    struct Q8Token { var d: [Float] = [], s: [Float] = [], q: [Int8] = [] }
    static func referenceQ8(_ x: [Float], q81: Bool) -> Q8Token {
        var t = Q8Token()
        for b in 0..<(x.count / 32) {
            let blk = x[(b * 32)..<(b * 32 + 32)]
            let d = (blk.map { abs($0) }.max() ?? 0) / 127
            let id: Float = d != 0 ? 1 / d : 0
            var sum = 0
            for v in blk {
                let q = Int8((v * id).rounded(.toNearestOrAwayFromZero))
                t.q.append(q); sum += Int(q)
            }
            t.d.append(Float(Float16(d)))
            t.s.append(q81 ? Float(Float16(Float(sum) * d)) : Float(sum))
        }
        return t
    }

    /// The documented layout: 320 bytes per group of 8 blocks; block i of a group at position (i & 1) * 4 + i / 2 of
    /// d[8] (offset 0) and aux[8] (offset 32); q per pair k at 64 + 64k: A[0..15] B[0..15] A[16..31] B[16..31].
    static func preparedBytes(_ t: Q8Token, code: Int32, cols: Int) -> [UInt8] {
        let nb = cols / 32
        var out = [UInt8](repeating: 0, count: (nb + 7) / 8 * 320)
        func put(_ v: UInt32, _ o: Int) { for i in 0..<4 { out[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        for b in 0..<nb {
            let g = b / 8 * 320, i = b % 8, pos = g + 4 * ((i & 1) * 4 + i / 2)
            put(t.d[b].bitPattern, pos)
            put(isQ81(code) ? t.s[b].bitPattern : UInt32(bitPattern: -offset(code) * Int32(t.s[b])), pos + 32)
            for j in 0..<32 { out[g + 64 + 64 * (i / 2) + (j < 16 ? 0 : 32) + 16 * (i & 1) + j % 16] = UInt8(bitPattern: t.q[b * 32 + j]) }
        }
        return out
    }

    /// Activations with an all-zero block, values that tie after scaling, and (extreme) blocks scaled far up or down.
    static func randomX(_ n: Int, extreme: Bool, rng: inout TestRNG) -> [Float] {
        var x = (0..<n).map { _ in rng.normal() * 2 }
        if n >= 64 { for i in 32..<64 { x[i] = 0 } }
        if n >= 96 { x[64] = 127 * 0.02; x[65] = 0.02 * 126.5; x[66] = -0.02 * 2.5 }
        if extreme {
            for i in 0..<n where rng.next() % 17 == 0 { x[i] *= 200 }
            if n >= 128 { for i in 96..<128 { x[i] *= 1e-30 } }   // d underflows f16 to 0
        }
        return x
    }

    /// Random valid rows: random bytes, the f16 scale (and min) fields set to small finite values; extreme rows add
    /// large, f16-subnormal and zero scales.
    static func randomRows(_ code: Int32, rows: Int, cols: Int, extreme: Bool, rng: inout TestRNG) -> [UInt8] {
        let bb = Int(pk_block_bytes(code))
        var w = (0..<(rows * cols / 32 * bb)).map { _ in rng.byte() }
        func put(_ v: Float, _ o: Int) { let b = Float16(v).bitPattern; w[o] = UInt8(b & 0xFF); w[o + 1] = UInt8(b >> 8) }
        for blk in 0..<(rows * cols / 32) {
            var d = (rng.uniform() - 0.5) * 0.1
            if extreme {
                switch rng.next() % 6 {
                case 0: d = rng.uniform() < 0.5 ? 900 : -900
                case 1: d = 6e-8
                case 2: d = 0
                default: break
                }
            }
            put(d, blk * bb)
            if isQ81(code) { put(extreme && rng.next() % 5 == 0 ? 300 : (rng.uniform() - 0.5) * 0.5, blk * bb + 2) }
        }
        return w
    }

    func testStrideAndSupport() {
        for (name, code) in Self.types {
            XCTAssertEqual(pk_native_supported(code), 1, name)
            XCTAssertEqual(pk_native_x_stride(code, 0), 0, name)
            XCTAssertEqual(pk_native_x_stride(code, 33), 0, "\(name) needs whole blocks")
            XCTAssertEqual(pk_native_x_stride(code, -32), 0, name)
            for cols in [32, 256, 288, 896] { XCTAssertEqual(pk_native_x_stride(code, Int64(cols)) % 64, 0, name) }
        }
    }

    func testPreparedMatchesGGMLQuantisation() {
        var rng = TestRNG(21)
        SIMDLevels.each { level in
            for (name, code) in Self.types {
                for cols in [32, 96, 256, 288, 480] {
                    let x = Self.randomX(cols, extreme: cols == 480, rng: &rng)
                    let stride = pk_native_x_stride(code, Int64(cols))
                    let want = Self.preparedBytes(Self.referenceQ8(x, q81: Self.isQ81(code)), code: code, cols: cols)
                    XCTAssertEqual(stride, want.count, "\(name) cols \(cols)")
                    var buf = [UInt8](repeating: 0xAA, count: stride)
                    pk_native_prepare(code, x, Int64(cols), Int64(cols), &buf, 0, 1)
                    if let i = (0..<stride).first(where: { buf[$0] != want[$0] }) {
                        XCTFail("\(level) \(name) cols \(cols): prepared byte \(i) is \(buf[i]), ggml's \(want[i])")
                    }
                }
            }
        }
    }

    /// All levels against the Double reference. Tolerance: each kernel forms exact integer sums (per block, or per
    /// 4-lane part of a block: sum(u q) + c with codes u <= |level| + off, |c| <= off |sum q|), multiplies them by
    /// d_w * d_x (2 roundings), adds m * s (1 rounding) and sums at most 8 nb + 16 terms in some order: error <=
    /// (8 nb + 18) * 2^-24 * size with size = sum_b |d_w d_x| sum_j (|v_j| + 2 off) |q_j| + sum_b |m s|. The
    /// reference's own inexactness, q4_1 / q5_1's dequantised d * u + m rounded to f32, adds 2^-24 sum |w x|.
    func checkProducts(_ code: Int32, name: String, rows: Int, cols: Int, T: Int, extreme: Bool, rng: inout TestRNG) {
        let nb = cols / 32, bb = Int(pk_block_bytes(code)), rb = nb * bb
        let w = Self.randomRows(code, rows: rows, cols: cols, extreme: extreme, rng: &rng)
        let ldx = cols + 5, ldy = rows + 3
        var x = [Float](repeating: .nan, count: T * ldx)
        var tokens: [Q8Token] = []
        for t in 0..<T {
            let xt = Self.randomX(cols, extreme: extreme, rng: &rng)
            for c in 0..<cols { x[t * ldx + c] = xt[c] }
            tokens.append(Self.referenceQ8(xt, q81: Self.isQ81(code)))
        }
        let stride = pk_native_x_stride(code, Int64(cols))
        var xn = [UInt8](repeating: 0xAA, count: stride * T)
        pk_native_prepare(code, x, Int64(ldx), Int64(cols), &xn, 0, Int64(T / 2))   // in two ranges, as the pool does
        pk_native_prepare(code, x, Int64(ldx), Int64(cols), &xn, Int64(T / 2), Int64(T))
        var want = [[Double]](repeating: [Double](repeating: 0, count: rows), count: T), tol = want
        var wf = [Float](repeating: 0, count: cols)
        let off = Double(code == 7 || code == 9 ? 0 : Self.offset(code))
        for r in 0..<rows {
            let row = Array(w[(r * rb)..<((r + 1) * rb)])
            pk_dequant_row_scalar(code, row, Int64(cols), &wf)
            for t in 0..<T {
                let tok = tokens[t]
                var s = 0.0, size = 0.0, wx = 0.0
                for b in 0..<nb {
                    let dw = Double(ReferenceDequant.f16(ReferenceDequant.u16(row, b * bb)))
                    let m = Self.isQ81(code) ? Double(ReferenceDequant.f16(ReferenceDequant.u16(row, b * bb + 2))) : 0
                    let dx = Double(tok.d[b])
                    var qsum = 0
                    for j in 0..<32 {
                        let q = Double(tok.q[b * 32 + j]), wj = Double(wf[b * 32 + j])
                        s += wj * dx * q
                        wx += abs(wj * dx * q)
                        size += (abs(wj - m) + 2 * off * abs(dw)) * abs(dx * q)
                        qsum += Int(tok.q[b * 32 + j])
                    }
                    if Self.isQ81(code) {   // ggml's m * s with its f16 s, instead of m * d_x * sum(q)
                        s += m * (Double(tok.s[b]) - dx * Double(qsum))
                        size += abs(m * Double(tok.s[b]))
                    }
                }
                want[t][r] = s
                tol[t][r] = Double(8 * nb + 18) * 0x1p-24 * size + 0x1p-24 * wx + 1e-30
            }
        }
        SIMDLevels.each { level in
            checkRowRanges(rows: rows, T: T, ldy: ldy, label: "\(level) \(name) rows \(rows) cols \(cols)\(extreme ? " extreme" : "")", multiply: { r0, r1, y in
                pk_matmul_rows_native(code, w, Int64(cols), xn, Int64(T), &y, Int64(ldy), Int64(r0), Int64(r1))
            }, expect: { t, r in (want[t][r], tol[t][r]) })
        }
    }

    func testProductsEveryLevel() {
        var rng = TestRNG(22)
        for (name, code) in Self.types {
            // 96: an odd last block; 288: a group and one block; 480: a group and 7; 1056: crosses the 24-block
            // (VNNI) and 32-block (AVX2) packed chunks of the T > 1 kernels
            for cols in [32, 96, 288, 480, 1056] {
                // T: row kernels below 3 to 5 tokens (by type), packed tiles of 4 (AVX2) or 8 (VNNI) tokens from
                // there, with 1, 2, 3 left over
                for T in [1, 2, 3, 4, 5, 6, 7, 17] {
                    for rows in [5, 37] {
                        checkProducts(code, name: name, rows: rows, cols: cols, T: T, extreme: false, rng: &rng)
                    }
                }
            }
            for T in [1, 3, 17] { checkProducts(code, name: name, rows: 21, cols: 288, T: T, extreme: true, rng: &rng) }
        }
    }

    /// The largest integer sums the kernels' int16 steps meet: every byte of the codes (and fifth bits) 0xFF or
    /// 0x00 (the largest / smallest code; iq4_nl's -127 level), against q = +127 or -127 everywhere. A saturated or
    /// wrapped int16 step would be off by far more than the rounding bound of checkProducts.
    func testLargestSums() {
        for (name, code) in Self.types {
            let cols = 1056, nb = cols / 32, bb = Int(pk_block_bytes(code)), rows = 13, T = 7
            for fill: UInt8 in [0xFF, 0x00] {
                var w = [UInt8](repeating: fill, count: rows * nb * bb)
                let one = Float16(1).bitPattern
                for blk in 0..<(rows * nb) {
                    w[blk * bb] = UInt8(one & 0xFF); w[blk * bb + 1] = UInt8(one >> 8)
                    if Self.isQ81(code) { w[blk * bb + 2] = 0; w[blk * bb + 3] = 0 }   // m = 0
                }
                var wf = [Float](repeating: 0, count: cols)
                pk_dequant_row_scalar(code, w, Int64(cols), &wf)   // every row the same
                var x = [Float](repeating: 0, count: T * cols)
                for t in 0..<T { for c in 0..<cols { x[t * cols + c] = t % 2 == 0 ? 1 : -1 } }
                var xn = [UInt8](repeating: 0, count: pk_native_x_stride(code, Int64(cols)) * T)
                pk_native_prepare(code, x, Int64(cols), Int64(cols), &xn, 0, Int64(T))
                let dx = Double(Float(Float16(Float(1) / 127)))
                let off = Double(Self.isQ81(code) ? 0 : Self.offset(code))
                var sum = 0.0, size = 0.0
                for c in 0..<cols { sum += Double(wf[c]) * 127 * dx; size += (abs(Double(wf[c])) + 2 * off) * 127 * dx }
                let tol = Double(8 * nb + 18) * 0x1p-24 * size
                SIMDLevels.each { level in
                    for T1 in [1, 2, 3, 4, 5, 7] {   // row kernels and tiles
                        var y = [Float](repeating: 0, count: T1 * rows)
                        pk_matmul_rows_native(code, w, Int64(cols), xn, Int64(T1), &y, Int64(rows), 0, Int64(rows))
                        for t in 0..<T1 {
                            let want = t % 2 == 0 ? sum : -sum
                            for r in 0..<rows where !(abs(Double(y[t * rows + r]) - want) <= tol) {
                                XCTFail("\(level) \(name) fill \(fill) T \(T1) t \(t) r \(r): \(y[t * rows + r]) vs \(want)"); return
                            }
                        }
                    }
                }
            }
        }
    }

    /// Exact cases: one activation of 127 (so d = 1, q = 127, s = 127) against rows of one repeated code; every
    /// level must give the dequantised weight times 127 exactly, wherever the element sits in its group / pair.
    func testOneHotExact() {
        for (name, code) in Self.types {
            let cols = 288, bb = Int(pk_block_bytes(code)), nb = cols / 32
            var row = [UInt8](repeating: 0, count: nb * bb)
            for b in 0..<nb {
                let one = Float16(0.5).bitPattern, m = Float16(-0.25).bitPattern
                row[b * bb] = UInt8(one & 0xFF); row[b * bb + 1] = UInt8(one >> 8)
                if Self.isQ81(code) { row[b * bb + 2] = UInt8(m & 0xFF); row[b * bb + 3] = UInt8(m >> 8) }
                for i in (bb - 16)..<bb { row[b * bb + i] = 0x3A }   // low nibble 10, high nibble 3
                if code == 8 || code == 9 { for i in (bb - 20)..<(bb - 16) { row[b * bb + i] = 0xF0 } }   // fifth bits
            }
            var wf = [Float](repeating: 0, count: cols)
            pk_dequant_row_scalar(code, row, Int64(cols), &wf)
            SIMDLevels.each { level in
                for hot in [0, 5, 17, 31, 100, 287] {
                    var x = [Float](repeating: 0, count: cols)
                    x[hot] = 127   // q = 127, d = 1
                    var xn = [UInt8](repeating: 0, count: pk_native_x_stride(code, Int64(cols)))
                    pk_native_prepare(code, x, Int64(cols), Int64(cols), &xn, 0, 1)
                    var y: [Float] = [0]
                    pk_matmul_rows_native(code, row, Int64(cols), xn, 1, &y, 1, 0, 1)
                    // q8_1: m * s with s = f16(d * 127) = 127, the same as m * x here
                    XCTAssertEqual(y[0], wf[hot] * 127, "\(level) \(name) element \(hot)")
                }
            }
        }
    }
}
