import CPersonaKernels
import Foundation

/// Naive dequantisation written from the GGML block layouts (ggml-common.h), independently of
/// the C kernels: one element at a time, by its index inside the block.
enum ReferenceDequant {
    static func f16(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }

    /// Element `i` of a row stored as `dtype` in `bytes`.
    static func element(_ dtype: String, _ b: [UInt8], _ i: Int) -> Float {
        switch dtype {
        case "f32":
            let o = i * 4
            return Float(bitPattern: UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24)
        case "f16":
            return f16(u16(b, 2 * i))
        case "bf16":
            return Float(bitPattern: UInt32(u16(b, 2 * i)) << 16)
        case "q8_0":  // { f16 d; int8 qs[32] }
            let blk = (i / 32) * 34, j = i % 32
            return f16(u16(b, blk)) * Float(Int8(bitPattern: b[blk + 2 + j]))
        case "q4_0":  // { f16 d; uint8 qs[16] }: element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of qs[j-16]
            let blk = (i / 32) * 18, j = i % 32
            let byte = b[blk + 2 + j % 16]
            let q = j < 16 ? Int(byte & 0x0F) : Int(byte >> 4)
            return f16(u16(b, blk)) * Float(q - 8)
        case "q4_1":  // { f16 d; f16 m; uint8 qs[16] }: nibbles as q4_0, unsigned; x = d * q + m
            let blk = (i / 32) * 20, j = i % 32
            let byte = b[blk + 4 + j % 16]
            let q = j < 16 ? Int(byte & 0x0F) : Int(byte >> 4)
            let scaled = f16(u16(b, blk)) * Float(q)
            return scaled + f16(u16(b, blk + 2))
        case "q4_k":  // { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128] }, 8 sub-blocks of 32
            let blk = (i / 256) * 144, j = i % 256
            let d = f16(u16(b, blk)), dmin = f16(u16(b, blk + 2))
            let s = Array(b[(blk + 4)..<(blk + 16)])
            let sub = j / 32
            // 6-bit scales and mins: sub-blocks 0-3 in the low 6 bits of s[0..3] / s[4..7];
            // 4-7 from the nibbles of s[8..11] with the top 2 bits in the high bits of s[0..3] / s[4..7].
            let sc: Int, mn: Int
            if sub < 4 {
                sc = Int(s[sub] & 63); mn = Int(s[sub + 4] & 63)
            } else {
                sc = Int(s[sub + 4] & 0x0F) | Int(s[sub - 4] >> 6) << 4
                mn = Int(s[sub + 4] >> 4) | Int(s[sub] >> 6) << 4
            }
            // 64 elements share 32 bytes: the even sub-block takes low nibbles, the odd one high nibbles.
            let byte = b[blk + 16 + (sub / 2) * 32 + j % 32]
            let q = sub % 2 == 0 ? Int(byte & 0x0F) : Int(byte >> 4)
            return d * Float(sc) * Float(q) - dmin * Float(mn)
        case "q6_k":  // { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d }, 16 sub-blocks of 16
            let blk = (i / 256) * 210, j = i % 256
            let half = j / 128, l = j % 128, quarter = l / 32, k = l % 32
            let ql = blk + half * 64, qh = blk + 128 + half * 32
            let lowByte = b[ql + k + (quarter % 2) * 32]
            let low = quarter < 2 ? Int(lowByte & 0x0F) : Int(lowByte >> 4)
            let high = Int((b[qh + k] >> (2 * quarter)) & 3)
            let q = (low | high << 4) - 32
            let scale = Int8(bitPattern: b[blk + 192 + half * 8 + k / 16 + 2 * quarter])
            return f16(u16(b, blk + 208)) * Float(scale) * Float(q)
        default:
            fatalError("unknown dtype \(dtype)")
        }
    }

    /// Types written out above; the others are checked against gguf-py only (testDequantMatchesGGUFPy), and the
    /// product tests use the portable C dequantisation, which that test pins bit for bit, as their reference.
    static let written: Set<String> = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q4_k", "q6_k"]

    static func row(_ dtype: String, _ b: [UInt8], cols: Int) -> [Float] {
        if written.contains(dtype) { return (0..<cols).map { element(dtype, b, $0) } }
        let code = KernelTests.dtypes.first { $0.0 == dtype }!.1
        var out = [Float](repeating: .nan, count: cols)
        pk_dequant_row_scalar(code, b, Int64(cols), &out)
        return out
    }
}

/// ggml's quantize_row_q8_0_ref, written out again: d = max|x| / 127, q = round(x / d) (half away from zero).
func referenceQuantizeQ8_0(_ x: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for b in 0..<(x.count / 32) {
        let blk = x[(b * 32)..<(b * 32 + 32)]
        let amax = blk.map { abs($0) }.max() ?? 0
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        let dh = Float16(d).bitPattern
        out += [UInt8(dh & 0xFF), UInt8(dh >> 8)]
        for v in blk { out.append(UInt8(bitPattern: Int8((v * id).rounded(.toNearestOrAwayFromZero)))) }
    }
    return out
}

/// Deterministic test data (SplitMix64).
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Float.pi * u2)
    }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

extension Array where Element == UInt8 {
    init(hex: String) {
        var out: [UInt8] = []
        out.reserveCapacity(hex.utf8.count / 2)
        var hi: UInt8? = nil
        for c in hex.utf8 {
            let v: UInt8 = c <= 57 ? c - 48 : c - 87
            if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
        }
        self = out
    }
}

func floatsFromHex(_ hex: String) -> [Float] {
    let b = [UInt8](hex: hex)
    return stride(from: 0, to: b.count, by: 4).map {
        Float(bitPattern: UInt32(b[$0]) << 24 | UInt32(b[$0 + 1]) << 16 | UInt32(b[$0 + 2]) << 8 | UInt32(b[$0 + 3]))
    }
}
