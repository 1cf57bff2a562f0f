import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

/// SIMD levels this CPU can run; every kernel test runs once per level.
enum SIMDLevels {
    static let all: [String] = ["scalar", "avx2", "avx512", "avx512vnni", "avx512bf16", "neon"].filter { pk_simd_level_available($0) != 0 }

    static func each(_ body: (String) throws -> Void) rethrows {
        defer { _ = pk_simd_set_level(nil) }
        for level in all {
            XCTAssertEqual(pk_simd_set_level(level), 0, "cannot select \(level)")
            XCTAssertEqual(String(cString: pk_simd_level()), level)
            try body(level)
        }
    }
}

final class KernelTests: XCTestCase {
    static let dtypes: [(String, Int32)] = [("f32", 0), ("f16", 1), ("bf16", 2), ("q8_0", 3), ("q4_0", 4), ("q4_1", 7), ("q4_k", 5), ("q6_k", 6),
                                                 ("q5_0", 8), ("q5_1", 9), ("q2_k", 10), ("q3_k", 11), ("q5_k", 12), ("iq4_nl", 13), ("iq4_xs", 14)]
    /// Elements and bytes per block.
    static func blockSize(_ name: String) -> Int { Int(pk_block_elements(dtypes.first { $0.0 == name }!.1)) }
    static func blockBytes(_ name: String) -> Int { Int(pk_block_bytes(dtypes.first { $0.0 == name }!.1)) }

    /// Random but valid stored rows: floats from a normal distribution; quantised blocks are random bytes
    /// with their f16 scale fields set to moderate values.
    static func randomRows(_ dtype: String, rows: Int, cols: Int, rng: inout TestRNG) -> [UInt8] {
        var out: [UInt8] = []
        func f16Bytes(_ v: Float) -> [UInt8] { let b = Float16(v).bitPattern; return [UInt8(b & 0xFF), UInt8(b >> 8)] }
        for _ in 0..<rows {
            switch dtype {
            case "f32":
                for _ in 0..<cols { let b = rng.normal().bitPattern; out += [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: b >> $0) } }
            case "f16":
                for _ in 0..<cols { out += f16Bytes(rng.normal()) }
            case "bf16":
                for _ in 0..<cols { let b = rng.normal().bitPattern >> 16; out += [UInt8(b & 0xFF), UInt8(b >> 8)] }
            case "q4_1", "q5_1":
                for _ in 0..<(cols / 32) {
                    out += f16Bytes(rng.uniform() * 0.01) + f16Bytes(-rng.uniform() * 0.08)
                    for _ in 4..<blockBytes(dtype) { out.append(rng.byte()) }
                }
            case "q2_k":
                for _ in 0..<(cols / 256) {
                    for _ in 0..<80 { out.append(rng.byte()) }
                    out += f16Bytes((rng.uniform() - 0.5) * 0.04) + f16Bytes((rng.uniform() - 0.5) * 0.04)
                }
            case "q3_k":
                for _ in 0..<(cols / 256) {
                    for _ in 0..<108 { out.append(rng.byte()) }
                    out += f16Bytes((rng.uniform() - 0.5) * 0.02)
                }
            case "iq4_xs":
                for _ in 0..<(cols / 256) {
                    out += f16Bytes((rng.uniform() - 0.5) * 0.02)
                    for _ in 2..<136 { out.append(rng.byte()) }
                }
            case "q8_0", "q4_0", "q5_0", "iq4_nl":   // f16 scale first, then the block's quants
                for _ in 0..<(cols / 32) {
                    out += f16Bytes((rng.uniform() - 0.5) * 0.1)
                    for _ in 2..<blockBytes(dtype) { out.append(rng.byte()) }
                }
            case "q4_k", "q5_k":   // f16 scale and min first
                for _ in 0..<(cols / 256) {
                    out += f16Bytes((rng.uniform() - 0.5) * 0.04) + f16Bytes((rng.uniform() - 0.5) * 0.04)
                    for _ in 4..<blockBytes(dtype) { out.append(rng.byte()) }
                }
            case "q6_k":
                for _ in 0..<(cols / 256) {
                    for _ in 0..<208 { out.append(rng.byte()) }
                    out += f16Bytes((rng.uniform() - 0.5) * 0.02)
                }
            default: fatalError()
            }
        }
        return out
    }

    /// |terms| summed for the error bound: the size of what a kernel adds up, whatever order it uses.
    /// For the types with a min (q4_1, q5_1: d*q + m; q4_k, q5_k: d*sc*q - dmin*m) a kernel may compute
    /// d*sum(q*x) + m*sum(x) (the AVX-512 exact kernels do), so both parts count.
    static func magnitude(_ dtype: String, _ b: [UInt8], _ i: Int) -> Float {
        if dtype == "q4_1" || dtype == "q5_1" {
            let bb = blockBytes(dtype), blk = (i / 32) * bb, qmax: Float = dtype == "q4_1" ? 15 : 31
            return abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk))) * qmax + abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk + 2)))
        }
        if dtype == "q2_k" {   // the exact kernel takes the mins through sums of x
            let blk = (i / 256) * 84
            let d = abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk + 80))), dmin = abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk + 82)))
            return d * 15 * 3 + dmin * 15 // upper bound of |d*sc*q| + |dmin*m|
        }
        if dtype == "q5_k" {
            let blk = (i / 256) * 176
            let d = abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk))), dmin = abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk + 2)))
            return (d + dmin) * 63 * 31 // upper bound of |d*sc*q| + |dmin*m|
        }
        if !ReferenceDequant.written.contains(dtype) {   // converted row by row, then summed
            let bs = blockSize(dtype), bb = blockBytes(dtype)
            let blk = Array(b[(i / bs * bb)..<(i / bs * bb + bb)])
            return abs(ReferenceDequant.row(dtype, blk, cols: bs)[i % bs])
        }
        guard dtype == "q4_k" else { return abs(ReferenceDequant.element(dtype, b, i)) }
        let blk = (i / 256) * 144
        let d = abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk))), dmin = abs(ReferenceDequant.f16(ReferenceDequant.u16(b, blk + 2)))
        return (d + dmin) * 63 * 15 // upper bound of |d*sc*q| + |dmin*m|
    }

    func testDequantRowMatchesReferenceEveryDtype() {
        var rng = TestRNG(1)
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes {
                let bs = Self.blockSize(name)
                for cols in [bs, bs * 3, bs == 1 ? 37 : bs * 5] {
                    let bytes = Self.randomRows(name, rows: 1, cols: cols, rng: &rng)
                    XCTAssertEqual(pk_row_bytes(code, Int64(cols)), bytes.count, name)
                    var out = [Float](repeating: .nan, count: cols)
                    pk_dequant_row(code, bytes, Int64(cols), &out)
                    let ref = ReferenceDequant.row(name, bytes, cols: cols)
                    for i in 0..<cols where abs(out[i] - ref[i]) > 1e-6 * Self.magnitude(name, bytes, i) {
                        XCTFail("\(level) \(name) cols \(cols) element \(i): \(out[i]) vs \(ref[i])"); break
                    }
                }
            }
        }
    }

    /// Blocks made and dequantised by gguf-py (llama.cpp's Python package): checks our reading of the layouts.
    func testDequantMatchesGGUFPy() {
        for (name, hexBytes, hexValues) in GGUFPyReference.dequant {
            let bytes = [UInt8](hex: hexBytes), expected = floatsFromHex(hexValues)
            let code = Self.dtypes.first { $0.0 == name }!.1
            XCTAssertEqual(pk_row_bytes(code, Int64(expected.count)), bytes.count, name)
            let ref = ReferenceDequant.row(name, bytes, cols: expected.count)
            XCTAssertEqual(ref, expected, "test reference vs gguf-py, \(name)")
            SIMDLevels.each { level in
                var out = [Float](repeating: .nan, count: expected.count)
                pk_dequant_row(code, bytes, Int64(expected.count), &out)
                // bit for bit: the same products and sums in the same f32 rounding as gguf-py
                for i in 0..<expected.count where out[i].bitPattern != expected[i].bitPattern {
                    XCTFail("\(level) \(name) element \(i): \(out[i]) vs gguf-py \(expected[i])"); break
                }
            }
        }
    }

    func checkMatmul(_ name: String, code: Int32, rows: Int, cols: Int, T: Int, rng: inout TestRNG, level: String,
                     mutate: ((inout [UInt8], inout TestRNG) -> Void)? = nil) {
        var w = Self.randomRows(name, rows: rows, cols: cols, rng: &rng)
        mutate?(&w, &rng)
        let ldx = cols + 5, ldy = rows + 3   // strides wider than the data
        var x = [Float](repeating: .nan, count: T * ldx)
        for t in 0..<T { for c in 0..<cols { x[t * ldx + c] = rng.normal() } }
        let rb = Int(pk_row_bytes(code, Int64(cols)))
        let deq = (0..<rows).map { r in ReferenceDequant.row(name, Array(w[(r * rb)..<((r + 1) * rb)]), cols: cols) }
        let mag = (0..<rows).map { r in (0..<cols).map { Self.magnitude(name, Array(w[(r * rb)..<((r + 1) * rb)]), $0) } }
        checkRowRanges(rows: rows, T: T, ldy: ldy, label: "\(level) \(name) rows \(rows) cols \(cols)", multiply: { r0, r1, y in
            pk_matmul_rows(code, w, Int64(cols), x, Int64(ldx), Int64(T), &y, Int64(ldy), Int64(r0), Int64(r1))
        }, expect: { t, r in
            var exact = 0.0, size: Float = 0
            for c in 0..<cols {
                exact += Double(deq[r][c]) * Double(x[t * ldx + c])
                size += mag[r][c] * abs(x[t * ldx + c])
            }
            // worst-case f32 rounding of a length-`cols` sum in any order (gamma_n), plus the dequantisation
            return (exact, Double(Float(cols + 4) * Float.ulpOfOne / 2 * size + 1e-30))
        })
    }

    func testMatmulAllDtypesOddSizes() {
        var rng = TestRNG(2)
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes {
                let colsList: [Int]
                switch name {
                case "f32", "f16", "bf16": colsList = [1, 7, 67, 300, 1029]
                default: colsList = Self.blockSize(name) == 32 ? [32, 96, 288] : [256, 768]
                }
                for cols in colsList {
                    for T in [1, 2, 3, 4, 5, 8, 9, 17] {   // 2...8: the small-batch kernels
                        for rows in [1, 5, 37] {
                            checkMatmul(name, code: code, rows: rows, cols: cols, T: T, rng: &rng, level: level)
                        }
                    }
                }
            }
        }
    }

    /// The prompt GEMM converts rows 64 at a time in column chunks of 1024 floats (kernels.c, gemm_driver): more
    /// than one row block with a rest that is not a multiple of 4 (134 rows; the odd range 3..<132 another split),
    /// and more than one column chunk with a short last one (2304 columns).
    func testMatmulAcrossRowBlocksAndColumnChunks() {
        var rng = TestRNG(11)
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes where ["f16", "q8_0", "q4_k"].contains(name) {
                checkMatmul(name, code: code, rows: 134, cols: 2304, T: 6, rng: &rng, level: level)
            }
        }
    }

    /// Every SIMD level's dequantisation equals the portable one bit for bit on arbitrary bytes, the f16 scale
    /// fields included: zero, subnormal, largest finite, inf and NaN (any NaN counts as equal to any NaN).
    func testDequantBitExactOnArbitraryBytes() {
        var rng = TestRNG(5)
        let scaleFields: [String: [Int]] = ["q8_0": [0], "q4_0": [0], "q5_0": [0], "iq4_nl": [0], "q4_1": [0, 2], "q5_1": [0, 2],
                                            "q4_k": [0, 2], "q5_k": [0, 2], "q6_k": [208], "q2_k": [80, 82], "q3_k": [108], "iq4_xs": [0]]
        let specials: [UInt16] = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01]
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes {
                guard let fields = scaleFields[name] else { continue }
                let bs = Self.blockSize(name), bb = Self.blockBytes(name)
                for blocks in [1, 3, 9] {
                    var bytes = (0..<(blocks * bb)).map { _ in rng.byte() }
                    for b in 0..<blocks {
                        for f in fields where rng.byte() & 1 == 0 {
                            let h = specials[Int(rng.byte()) % specials.count]
                            bytes[b * bb + f] = UInt8(h & 0xFF); bytes[b * bb + f + 1] = UInt8(h >> 8)
                        }
                    }
                    let cols = blocks * bs
                    var out = [Float](repeating: 0, count: cols), ref = [Float](repeating: 0, count: cols)
                    pk_dequant_row(code, bytes, Int64(cols), &out)
                    pk_dequant_row_scalar(code, bytes, Int64(cols), &ref)
                    for i in 0..<cols where out[i].bitPattern != ref[i].bitPattern && !(out[i].isNaN && ref[i].isNaN) {
                        XCTFail("\(level) \(name) blocks \(blocks) element \(i): \(out[i]) vs portable \(ref[i])"); break
                    }
                }
            }
        }
    }

    /// Rows wider than the kernels' stack tile (16384) take the column-chunked path (or stream in one piece).
    func testMatmulVeryWideRows() {
        var rng = TestRNG(3)
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes where ["bf16", "q8_0", "q4_1", "q4_k", "q5_k", "q6_k", "iq4_xs", "q5_0", "q2_k"].contains(name) {
                checkMatmul(name, code: code, rows: 3, cols: 16384 + 512, T: 2, rng: &rng, level: level)
            }
        }
    }

    /// T == 1 on wide rows: the AVX-512 kernels on laid-out x run groups of rows over column chunks of x there
    /// (pk_x86.h `PK_EXACT_ROWS`); every type, every level.
    func testMatvecVeryWideRowsEveryType() {
        var rng = TestRNG(7)
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes where !["f32", "f16", "bf16"].contains(name) {
                checkMatmul(name, code: code, rows: 5, cols: 16384 + 512, T: 1, rng: &rng, level: level)
                checkMatmul(name, code: code, rows: 3, cols: 6144 + 256, T: 1, rng: &rng, level: level)
                // the grouped wide-row path (pk_x86.h PK_EXACT_ROWS): a group of 8 and a partial one, a last column
                // chunk shorter than the others, and for the blocks of 32 an odd group and a partial group after
                // the pairs (261 blocks: 65 groups of 4 + 1; 259: 129 groups of 2 + 1)
                for cols in Self.blockSize(name) == 32 ? [8192 + 32 * 5, 8192 + 32 * 3] : [8192 + 256 * 3] {
                    checkMatmul(name, code: code, rows: 19, cols: cols, T: 1, rng: &rng, level: level)
                }
            }
        }
    }

    /// y = W x at T == 1 with each row r computed in a pk_matmul_rows call of its own: alone (r % 3 == 0) or at
    /// the start of a range of up to 5 rows, so it never shares a group of the wide-row paths with the rows before.
    static func rowsApart(_ code: Int32, _ w: [UInt8], _ x: [Float], rows: Int, cols: Int) -> [Float] {
        var y = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            let r1 = r % 3 == 0 ? r + 1 : min(rows, r + 5)
            var part = [Float](repeating: 0, count: rows)
            pk_matmul_rows(code, w, Int64(cols), x, Int64(cols), 1, &part, Int64(rows), Int64(r), Int64(r1))
            y[r] = part[r]
        }
        return y
    }

    /// f32 / f16 / bf16 rows of 6144 columns or more (x from 24 KiB) run PK_EXACT_WIDE_ROWS at a time over column
    /// chunks (MATVEC_256, kernels_x86.c): against the double reference for a group of 8, a partial group, a last
    /// chunk shorter than the others and both tails (8 and scalar); and a row alone, or a range starting at an odd
    /// row, gives the same bits as inside a group. 6143 is the last width of the row-at-a-time loop.
    func testMatvecWideDenseRows() {
        var rng = TestRNG(17)
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes where ["f32", "f16", "bf16"].contains(name) {
                for cols in [6143, 6144 + 11, 8192 + 32 * 5 + 8 + 3] {
                    checkMatmul(name, code: code, rows: 19, cols: cols, T: 1, rng: &rng, level: level)
                    let rows = 21
                    let w = Self.randomRows(name, rows: rows, cols: cols, rng: &rng)
                    let x = (0..<cols).map { _ in rng.normal() }
                    var yAll = [Float](repeating: 0, count: rows)
                    pk_matmul_rows(code, w, Int64(cols), x, Int64(cols), 1, &yAll, Int64(rows), 0, Int64(rows))
                    let yOne = Self.rowsApart(code, w, x, rows: rows, cols: cols)
                    XCTAssertEqual(yOne.map(\.bitPattern), yAll.map(\.bitPattern), "\(level) \(name) cols \(cols), rows apart")
                }
            }
        }
    }

    /// T == 1 on q2_K / q3_K (the exact kernels on laid-out x at AVX-512 and AVX2) with extreme f16 scales: zero,
    /// the f16 maximum, subnormal and tiny ones mixed with ordinary ones, block by block; all rows and an odd range.
    func testExactK23ExtremeScales() {
        var rng = TestRNG(9)
        let fields: [String: (bytes: Int, offsets: [Int])] = ["q2_k": (84, [80, 82]), "q3_k": (110, [108])]
        let values: [Float] = [0, 65504, -65504, 60000, 6e-8, -3e-7, 1e-5, -0.01, 0.02]
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes {
                guard let f = fields[name] else { continue }
                for cols in [256, 2304, 8192] {
                    checkMatmul(name, code: code, rows: 7, cols: cols, T: 1, rng: &rng, level: "\(level) extreme") { w, rng in
                        for b in 0..<(w.count / f.bytes) {
                            for o in f.offsets {
                                let h = Float16(values[Int(rng.byte()) % values.count]).bitPattern
                                w[b * f.bytes + o] = UInt8(h & 0xFF); w[b * f.bytes + o + 1] = UInt8(h >> 8)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Ops.matmul at T == 1 lays x out once per call and hands row chunks to two threads
    /// (`pk_matvec_exact_prepared`); that gives the same bits as pk_matmul_rows doing it all in one call, and as
    /// row ranges that split the wide kernels' row groups; the C entry points say which types have such a kernel.
    func testExactPreparedPathMatchesMatmulRows() {
        var rng = TestRNG(8)
        let pool = ThreadPool(threads: 2)
        let kernelTypes: Set<String> = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_xs"]
        let avx2KernelTypes: Set<String> = ["q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_xs"]   // kernels_x86_exact256.c
        SIMDLevels.each { level in
            for (name, code) in Self.dtypes where !["f32", "f16", "bf16"].contains(name) {
                let dtype = DType.allCases.first { $0.kernelCode == code }!
                let hasKernel = pk_exact_x_floats(code, 8192) > 0
                XCTAssertEqual(hasKernel, level.hasPrefix("avx512") ? kernelTypes.contains(name) : level == "avx2" && avx2KernelTypes.contains(name),
                               "\(level) \(name)")
                for cols in Self.blockSize(name) == 32 ? [2080, 8192 + 256, 8192 + 32 * 5, 8192 + 32 * 3] : [2048, 8192 + 256, 8192 + 256 * 3] {
                    let rows = 333
                    let w = Self.randomRows(name, rows: rows, cols: cols, rng: &rng)
                    let x = (0..<cols).map { _ in rng.normal() }
                    var yRows = [Float](repeating: 0, count: rows), yOps = yRows
                    pk_matmul_rows(code, w, Int64(cols), x, Int64(cols), 1, &yRows, Int64(rows), 0, Int64(rows))
                    w.withUnsafeBytes { raw in
                        let m = WeightMatrix(data: raw.baseAddress!, dtype: dtype, rows: rows, cols: cols, owner: nil)
                        Ops.matmul(m, x, T: 1, &yOps, precision: .exact, pool: pool)
                    }
                    XCTAssertEqual(yOps.map(\.bitPattern), yRows.map(\.bitPattern), "\(level) \(name) cols \(cols)")
                    // wide rows run in groups of 8 (pk_x86.h PK_EXACT_ROWS): a row alone, or starting a range at an
                    // odd row, gives the same bits as inside a group
                    let yOne = Self.rowsApart(code, w, x, rows: rows, cols: cols)
                    XCTAssertEqual(yOne.map(\.bitPattern), yRows.map(\.bitPattern), "\(level) \(name) cols \(cols), rows apart")
                }
            }
        }
    }

    /// Every matrix product path reads only the bytes of the rows it is given. W is placed to end right before a page
    /// that may not be read, as a tensor at the end of a memory-mapped file can: a kernel that loads a whole vector
    /// where fewer bytes remain (a partial group of blocks, a row's tail) faults. The last row widened alone, the
    /// generic rows (T = 1 and a prompt tile), the exact laid-out path and the native path, every type, every SIMD
    /// level, short rows and every partial group, the lattice types too; results equal the same calls on the bytes in
    /// an ordinary array.
    func testMatmulReadsOnlyItsRows() {
        var rng = TestRNG(21)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // the types of this file, then the lattice types (LatticeTypeTests' valid random rows)
        let types: [(String, Int32, Int, DType?)] = Self.dtypes.map { ($0.0, $0.1, Self.blockSize($0.0), nil) }
            + LatticeTypeTests.types.map { ($0.0, $0.1.kernelCode, 256, $0.1) }
        SIMDLevels.each { level in
            for (name, code, bs, lattice) in types {
                let colsList = bs == 1 ? [1, 7, 33, 8192 + 5] : bs == 32 ? [32, 64, 96, 160, 2080, 8192 + 96] : [256, 768, 8192 + 256]
                for cols in colsList {
                    let rows = 5, T = 5
                    let w = lattice.map { LatticeTypeTests.randomRows($0, rows: rows, cols: cols, rng: &rng) }
                        ?? Self.randomRows(name, rows: rows, cols: cols, rng: &rng)
                    let x = (0..<(T * cols)).map { _ in rng.normal() }
                    let mapped = (w.count + page - 1) / page * page + page
                    guard let base = mmap(nil, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                          base != MAP_FAILED else { return XCTFail("mmap") }
                    defer { munmap(base, mapped) }
                    XCTAssertEqual(mprotect(base + (mapped - page), page, PROT_NONE), 0)
                    let edge = UnsafeMutableRawPointer(base + (mapped - page - w.count))
                    w.withUnsafeBytes { edge.copyMemory(from: $0.baseAddress!, byteCount: w.count) }
                    let what = "\(level) \(name) cols \(cols)"
                    // the last row widened alone (an embedding lookup, a tile's conversion)
                    let rb = w.count / rows
                    var rowEdge = [Float](repeating: 0, count: cols), rowArray = rowEdge
                    pk_dequant_row(code, edge + (rows - 1) * rb, Int64(cols), &rowEdge)
                    w.withUnsafeBytes { pk_dequant_row(code, $0.baseAddress! + (rows - 1) * rb, Int64(cols), &rowArray) }
                    XCTAssertEqual(rowEdge.map(\.bitPattern), rowArray.map(\.bitPattern), "\(what) last row widened")
                    for t in [1, T] {
                        var yEdge = [Float](repeating: 0, count: t * rows), yArray = yEdge
                        pk_matmul_rows(code, edge, Int64(cols), x, Int64(cols), Int64(t), &yEdge, Int64(rows), 0, Int64(rows))
                        pk_matmul_rows(code, w, Int64(cols), x, Int64(cols), Int64(t), &yArray, Int64(rows), 0, Int64(rows))
                        XCTAssertEqual(yEdge.map(\.bitPattern), yArray.map(\.bitPattern), "\(what) T \(t)")
                    }
                    let nf = pk_exact_x_floats(code, Int64(cols))
                    if nf > 0 {
                        let xp = UnsafeMutablePointer<Float>(OpaquePointer(aligned_alloc(64, (Int(nf) * 4 + 63) / 64 * 64)!))
                        defer { free(xp) }
                        pk_exact_prepare(code, x, Int64(cols), xp)
                        var yEdge = [Float](repeating: 0, count: rows), yArray = yEdge
                        pk_matvec_exact_prepared(code, edge, Int64(cols), xp, &yEdge, 0, Int64(rows))
                        pk_matvec_exact_prepared(code, w, Int64(cols), xp, &yArray, 0, Int64(rows))
                        XCTAssertEqual(yEdge.map(\.bitPattern), yArray.map(\.bitPattern), "\(what) exact laid-out")
                    }
                    let stride = pk_native_x_stride(code, Int64(cols))
                    if stride > 0 {
                        let xn = aligned_alloc(64, T * stride)!
                        defer { free(xn) }
                        pk_native_prepare(code, x, Int64(cols), Int64(cols), xn, 0, Int64(T))
                        for t in [1, T] {
                            var yEdge = [Float](repeating: 0, count: t * rows), yArray = yEdge
                            pk_matmul_rows_native(code, edge, Int64(cols), xn, Int64(t), &yEdge, Int64(rows), 0, Int64(rows))
                            pk_matmul_rows_native(code, w, Int64(cols), xn, Int64(t), &yArray, Int64(rows), 0, Int64(rows))
                            XCTAssertEqual(yEdge.map(\.bitPattern), yArray.map(\.bitPattern), "\(what) native T \(t)")
                        }
                    }
                }
            }
        }
    }

    func testDotAndAxpyOddLengths() {
        var rng = TestRNG(4)
        SIMDLevels.each { level in
            for n in [0, 1, 3, 15, 16, 17, 63, 64, 65, 131, 1000] {
                let a = (0..<n).map { _ in rng.normal() }, b = (0..<n).map { _ in rng.normal() }
                var exact = 0.0, size: Float = 0
                for i in 0..<n { exact += Double(a[i]) * Double(b[i]); size += abs(a[i] * b[i]) }
                let got = pk_dot_f32(a, b, Int64(n))
                XCTAssertLessThanOrEqual(abs(Double(got) - exact), Double(Float(n + 2) * Float.ulpOfOne / 2 * size) + 1e-30, "\(level) dot n \(n)")
                var y = b
                pk_axpy_f32(0.75, a, &y, Int64(n))
                for i in 0..<n { XCTAssertEqual(y[i], b[i] + 0.75 * a[i], accuracy: 2 * Float.ulpOfOne * (abs(b[i]) + abs(a[i])), "\(level) axpy n \(n)") }
            }
        }
    }
}

final class ConversionTests: XCTestCase {
    /// Every f16 bit pattern against Swift's Float16.
    func testF16ToF32AllPatterns() {
        for h in 0...UInt16.max {
            let want = Float(Float16(bitPattern: h)), got = pk_f16_to_f32(h)
            if want.isNaN {
                XCTAssertTrue(got.isNaN, "pattern \(h)")
            } else if got.bitPattern != want.bitPattern {
                XCTFail("f16 pattern 0x\(String(h, radix: 16)): \(got) vs \(want)"); return
            }
        }
    }

    /// The f16 row conversion of every SIMD level, over all 65536 patterns.
    func testF16RowConversionAllPatterns() {
        var bytes = [UInt8](); bytes.reserveCapacity(131072)
        for h in 0...UInt16.max { bytes += [UInt8(h & 0xFF), UInt8(h >> 8)] }
        SIMDLevels.each { level in
            var out = [Float](repeating: 0, count: 65536)
            pk_dequant_row(1, bytes, 65536, &out)
            for h in 0...Int(UInt16.max) {
                let want = Float(Float16(bitPattern: UInt16(h)))
                if want.isNaN ? !out[h].isNaN : out[h].bitPattern != want.bitPattern {
                    XCTFail("\(level): f16 pattern 0x\(String(h, radix: 16)): \(out[h]) vs \(want)"); return
                }
            }
        }
    }

    /// f32 -> f16 rounding against Swift's Float16(Float): exact values, midpoints (ties to even), just either side
    /// of them, overflow and subnormals.
    func testF32ToF16Rounding() {
        var inputs: [Float] = [0, -0, .infinity, -.infinity, 65504, 65519.996, 65520, 1e10, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9]
        for h in stride(from: 0, through: 0x7BFF, by: 1) {
            let a = Float(Float16(bitPattern: UInt16(h))), b = Float(Float16(bitPattern: UInt16(h + 1)))
            let mid = (a + b) / 2   // exact in f32
            inputs += [a, mid, mid.nextUp, mid.nextDown, -mid]
        }
        for x in inputs {
            let want = Float16(x).bitPattern, got = pk_f32_to_f16(x)
            if got != want { XCTFail("f32 \(x) (0x\(String(x.bitPattern, radix: 16))): 0x\(String(got, radix: 16)) vs Float16 0x\(String(want, radix: 16))"); return }
        }
        XCTAssertTrue(Float16(bitPattern: pk_f32_to_f16(.nan)).isNaN)
    }

    func testBF16RoundToNearestEven() {
        // hand-checked: ties go to the even mantissa, above-half rounds up, max finite rounds to infinity
        XCTAssertEqual(pk_f32_to_bf16(Float(bitPattern: 0x3F80_8000)), 0x3F80)  // 1 + 2^-8: tie, even is down
        XCTAssertEqual(pk_f32_to_bf16(Float(bitPattern: 0x3F81_8000)), 0x3F82)  // tie, even is up
        XCTAssertEqual(pk_f32_to_bf16(Float(bitPattern: 0x3F80_8001)), 0x3F81)  // just above the tie
        XCTAssertEqual(pk_f32_to_bf16(Float(bitPattern: 0x3F81_7FFF)), 0x3F81)  // just below the tie
        XCTAssertEqual(pk_f32_to_bf16(Float(bitPattern: 0x7F7F_FFFF)), 0x7F80)  // max f32 -> inf
        XCTAssertEqual(pk_f32_to_bf16(-0.0), 0x8000)
        XCTAssertEqual(pk_f32_to_bf16(Float(bitPattern: 0x0000_8000)), 0x0000)  // subnormal tie, even
        XCTAssertEqual(pk_f32_to_bf16(Float(bitPattern: 0x0001_8000)), 0x0002)
        let nan = pk_f32_to_bf16(Float(bitPattern: 0x7F80_0001))            // signalling NaN must stay NaN
        XCTAssertTrue(Float(bitPattern: UInt32(nan) << 16).isNaN)
        // against gguf-py's conversion
        let xs = floatsFromHex(GGUFPyReference.bf16Input)
        let want = [UInt8](hex: GGUFPyReference.bf16Output)
        for (i, x) in xs.enumerated() {
            XCTAssertEqual(pk_f32_to_bf16(x), UInt16(want[2 * i]) << 8 | UInt16(want[2 * i + 1]), "bf16 of \(x)")
        }
        for h in 0...UInt16.max where !Float(bitPattern: UInt32(h) << 16).isNaN {
            if pk_bf16_to_f32(h).bitPattern != UInt32(h) << 16 { XCTFail("bf16 pattern \(h)"); return }
            if pk_f32_to_bf16(pk_bf16_to_f32(h)) != h { XCTFail("bf16 round trip \(h)"); return }
        }
    }

    func testQuantizeQ8_0MatchesGGML() {
        var rng = TestRNG(5)
        for n in [32, 64, 320] {
            var x = (0..<n).map { _ in rng.normal() * 3 }
            if n == 64 { for i in 32..<64 { x[i] = 0 } }                   // all-zero block: scale 0
            if n == 320 { x[5] = 127.0 / 2 * 0.02; x[6] = -0.02 * 127 }   // exact .5 ties after scaling
            var out = [UInt8](repeating: 0, count: n / 32 * 34)
            pk_quantize_row_q8_0(x, Int64(n), &out)
            XCTAssertEqual(out, referenceQuantizeQ8_0(x), "n \(n)")
        }
        let x = floatsFromHex(GGUFPyReference.q8Input)
        var out = [UInt8](repeating: 0, count: x.count / 32 * 34)
        pk_quantize_row_q8_0(x, Int64(x.count), &out)
        XCTAssertEqual(out, [UInt8](hex: GGUFPyReference.q8Output), "q8_0 vs gguf-py")
    }

    /// q2_K / q4_K / q5_K quantisation runs make_qkx2_quants' trial scales 16 at a time at the AVX-512 levels, q6_K
    /// make_qx_quants', iq4_nl / iq4_xs their 15 trial scales (quantize.c): the same bytes as the portable loops at
    /// every level, on rows where trials keep beating the best
    /// error (normal values), on flat and tiny rows, rows with zeros and exact ties, and all-positive rows (a min
    /// clamped to 0). GGUFQuantizerTests checks the default level's bytes against llama.cpp's quantizer.
    func testQuantizeKTypesSameBytesEveryLevel() {
        var rng = TestRNG(12)
        let cols = 2048
        var rows = [[Float]]()
        for mode in 0..<6 {
            rows.append((0..<cols).map { i in
                switch mode {
                case 0: return rng.normal()
                case 1: return rng.normal() * 1e-4
                case 2: return i % 5 == 0 ? 0 : rng.normal()
                case 3: return abs(rng.normal()) + 0.5
                case 4: return Float(Int(rng.normal() * 2))
                default: return (i / 32) % 3 == 0 ? 0.25 : rng.normal() * 4
                }
            })
        }
        for (name, code) in [("q2_k", Int32(10)), ("q4_k", Int32(5)), ("q5_k", Int32(12)), ("q6_k", Int32(6)), ("iq4_nl", Int32(13)), ("iq4_xs", Int32(14))] {
            let bytes = Int(pk_row_bytes(code, Int64(cols)))
            var want = [[UInt8]]()
            XCTAssertEqual(pk_simd_set_level("scalar"), 0)
            for x in rows {
                var out = [UInt8](repeating: 0, count: bytes)
                XCTAssertEqual(pk_quantize_row(code, x, Int64(cols), &out), 0)
                want.append(out)
            }
            SIMDLevels.each { level in
                for (m, x) in rows.enumerated() {
                    var out = [UInt8](repeating: 0, count: bytes)
                    XCTAssertEqual(pk_quantize_row(code, x, Int64(cols), &out), 0)
                    XCTAssertEqual(out, want[m], "\(level) \(name) row mode \(m)")
                }
            }
        }
    }

    func testWeightMatrixRoundTrip() {
        var rng = TestRNG(6)
        let rows = 3, cols = 64
        let v = (0..<(rows * cols)).map { _ in rng.normal() }
        for dt in [DType.f32, .f16, .bf16, .q8_0] {
            let m = WeightMatrix.from(v, rows: rows, cols: cols, dtype: dt)
            XCTAssertEqual(m.byteCount, rows * dt.rowBytes(cols)!)
            let back = m.toFloatArray()
            for i in 0..<v.count {
                // half an ulp of the stored type; q8_0: half a step of its block scale (amax / 127), plus the f16 scale's rounding
                let blockMax = v[(i / 32 * 32)..<(i / 32 * 32 + 32)].map { abs($0) }.max()!
                let tol: Float
                switch dt {
                case .f32: tol = 0
                case .f16: tol = abs(v[i]) * 0x1p-11
                case .bf16: tol = abs(v[i]) * 0x1p-8
                default: tol = blockMax / 127 * 0.5 * 1.001 + abs(v[i]) * 0x1p-11
                }
                XCTAssertLessThanOrEqual(abs(back[i] - v[i]), tol, "\(dt) element \(i)")
            }
        }
    }
}
