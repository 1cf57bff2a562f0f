import Foundation
import XCTest
@testable import PersonaTestSupport
@testable import PersonaFormats
import PersonaTensor

/// Builds GGUF bytes by hand so tests can write what no honest writer would.
struct RawGGUF {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) {
        bytes += Array("GGUF".utf8); u32(version); u64(tensors); u64(kvs)
    }
    mutating func kvU32(_ k: String, _ v: UInt32) { str(k); u32(4); u32(v) }
    mutating func tensorInfo(_ name: String, ne: [UInt64], type: UInt32, offset: UInt64) {
        str(name); u32(UInt32(ne.count)); for n in ne { u64(n) }; u32(type); u64(offset)
    }
    mutating func pad(_ a: Int = 32) { while bytes.count % a != 0 { bytes.append(0) } }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
}

final class HostileInputTests: XCTestCase {
    let gname = URL(fileURLWithPath: "/hostile/test.gguf")
    let sname = URL(fileURLWithPath: "/hostile/test.safetensors")

    func gguf(_ b: [UInt8]) throws -> GGUFFile { try GGUFFile(file: MappedFile(url: gname, contents: b)) }
    func st(_ b: [UInt8]) throws -> SafetensorsFile { try SafetensorsFile(file: MappedFile(url: sname, contents: b)) }
    func st(header: String, data: Int, declared: UInt64? = nil) throws -> SafetensorsFile {
        var b = [UInt8]()
        withUnsafeBytes(of: (declared ?? UInt64(header.utf8.count)).littleEndian) { b += $0 }
        b += Array(header.utf8)
        b += [UInt8](repeating: 0, count: data)
        return try st(b)
    }

    /// A valid one-tensor GGUF: f32 [2, 32] (ne = [32, 2]).
    func validGGUF(ne: [UInt64] = [32, 2], type: UInt32 = 0, offset: UInt64 = 0, dataBytes: Int = 256, extraKV: ((inout RawGGUF) -> Void)? = nil, kvs: UInt64 = 1) -> [UInt8] {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: kvs)
        g.str("general.architecture"); g.u32(8); g.str("llama")
        extraKV?(&g)
        g.tensorInfo("w", ne: ne, type: type, offset: offset)
        g.pad()
        g.zeros(dataBytes)
        return g.bytes
    }

    func testValidHandMadeGGUFParses() throws {
        let g = try gguf(validGGUF())
        XCTAssertEqual(g.tensor("w")?.shape, [2, 32])
        XCTAssertEqual(g.tensor("w")?.byteCount, 256)
    }

    func testGGUFHeaderErrors() throws {
        assertFormatError(try gguf([]), mentions: ["test.gguf", "magic"])
        assertFormatError(try gguf(Array("GGUX".utf8) + [3, 0, 0, 0]), mentions: ["test.gguf", "not a GGUF"])
        assertFormatError(try gguf(Array("PK\u{3}\u{4}".utf8) + [UInt8](repeating: 0, count: 40)), mentions: ["not a GGUF"])
        var v1 = RawGGUF(); v1.header(version: 1, tensors: 0, kvs: 0)
        assertFormatError(try gguf(v1.bytes), mentions: ["version 1"])
        var be = RawGGUF(); be.header(version: UInt32(3).byteSwapped, tensors: 0, kvs: 0)
        assertFormatError(try gguf(be.bytes), mentions: ["big-endian"])
        var v9 = RawGGUF(); v9.header(version: 9, tensors: 0, kvs: 0)
        assertFormatError(try gguf(v9.bytes), mentions: ["version 9"])
        var hugeT = RawGGUF(); hugeT.header(tensors: UInt64.max, kvs: 0)
        assertFormatError(try gguf(hugeT.bytes), mentions: ["tensor_count"])
        var hugeK = RawGGUF(); hugeK.header(tensors: 0, kvs: 1 << 40)
        assertFormatError(try gguf(hugeK.bytes), mentions: ["metadata_kv_count"])
    }

    func testGGUFMetadataErrors() throws {
        // String length beyond the file.
        var s = RawGGUF(); s.header(tensors: 0, kvs: 1); s.u64(UInt64.max); s.zeros(16)
        assertFormatError(try gguf(s.bytes), mentions: ["metadata key #0", "length"])
        // Unknown value type.
        var t = RawGGUF(); t.header(tensors: 0, kvs: 1); t.str("k"); t.u32(99); t.zeros(16)
        assertFormatError(try gguf(t.bytes), mentions: ["'k'", "unknown value type 99"])
        // Array claiming more strings than bytes remain.
        var a = RawGGUF(); a.header(tensors: 0, kvs: 1); a.str("tokenizer.ggml.tokens"); a.u32(9); a.u32(8); a.u64(1 << 50); a.zeros(64)
        assertFormatError(try gguf(a.bytes), mentions: ["tokenizer.ggml.tokens", "count"])
        // Array of u32 one element short.
        var a2 = RawGGUF(); a2.header(tensors: 0, kvs: 1); a2.str("ids"); a2.u32(9); a2.u32(4); a2.u64(3); a2.u32(1); a2.u32(2)
        assertFormatError(try gguf(a2.bytes), mentions: ["ids"])
        // Unknown array element type.
        var a3 = RawGGUF(); a3.header(tensors: 0, kvs: 1); a3.str("x"); a3.u32(9); a3.u32(77); a3.u64(0)
        assertFormatError(try gguf(a3.bytes), mentions: ["'x'", "element type 77"])
        // Arrays nested too deep.
        var d = RawGGUF(); d.header(tensors: 0, kvs: 1); d.str("deep"); d.u32(9)
        for _ in 0 ..< 10 { d.u32(9); d.u64(1) }
        d.u32(4); d.u64(0)
        assertFormatError(try gguf(d.bytes), mentions: ["deep", "nested"])
        // Bool other than 0/1, duplicate key, bad alignment.
        var b = RawGGUF(); b.header(tensors: 0, kvs: 1); b.str("flag"); b.u32(7); b.u8(2)
        assertFormatError(try gguf(b.bytes), mentions: ["flag", "bool"])
        var dup = RawGGUF(); dup.header(tensors: 0, kvs: 2); dup.kvU32("a", 1); dup.kvU32("a", 2)
        assertFormatError(try gguf(dup.bytes), mentions: ["duplicate", "'a'"])
        for bad: UInt32 in [0, 3, 48, 1 << 30] {
            var al = RawGGUF(); al.header(tensors: 0, kvs: 1); al.kvU32("general.alignment", bad)
            assertFormatError(try gguf(al.bytes), mentions: ["general.alignment"])
        }
    }

    func testGGUFTensorErrors() throws {
        // Unknown GGML type (77: none): names the number, the tensor and what is supported.
        assertFormatError(try gguf(validGGUF(type: 77)), mentions: ["'w'", "GGML type 77", "iq4_xs=23", "iq1_m=29", "mxfp4=39"])
        // Quantised inner dimension not a multiple of the block size (q8_0 = 8, block 32).
        assertFormatError(try gguf(validGGUF(ne: [48, 2], type: 8)), mentions: ["'w'", "block size 32"])
        // Data beyond the end of the file.
        assertFormatError(try gguf(validGGUF(dataBytes: 255)), mentions: ["'w'", "outside the file"])
        assertFormatError(try gguf(validGGUF(offset: 1 << 62)), mentions: ["'w'"])
        assertFormatError(try gguf(validGGUF(offset: UInt64.max - 31)), mentions: ["'w'"])
        // Unaligned offset.
        assertFormatError(try gguf(validGGUF(offset: 4)), mentions: ["'w'", "alignment"])
        // Dimensions whose product overflows, and a dimension above Int64.max.
        assertFormatError(try gguf(validGGUF(ne: [1 << 32, 1 << 32, 1 << 10])), mentions: ["'w'", "overflow"])
        assertFormatError(try gguf(validGGUF(ne: [UInt64.max, 1])), mentions: ["'w'"])
        // Too many dimensions.
        assertFormatError(try gguf(validGGUF(ne: [1, 1, 1, 1, 1])), mentions: ["'w'", "n_dims"])
        // Header ends before the data section.
        var g = RawGGUF(); g.header(tensors: 1, kvs: 0); g.tensorInfo("w", ne: [4], type: 0, offset: 0)
        assertFormatError(try gguf(g.bytes), mentions: ["truncated"])
        // Duplicate tensor names, overlapping tensors.
        var d = RawGGUF(); d.header(tensors: 2, kvs: 0)
        d.tensorInfo("w", ne: [8], type: 0, offset: 0); d.tensorInfo("w", ne: [8], type: 0, offset: 32); d.pad(); d.zeros(64)
        assertFormatError(try gguf(d.bytes), mentions: ["duplicate", "'w'"])
        var o = RawGGUF(); o.header(tensors: 2, kvs: 0)
        o.tensorInfo("a", ne: [16], type: 0, offset: 0); o.tensorInfo("b", ne: [8], type: 0, offset: 32); o.pad(); o.zeros(64)
        assertFormatError(try gguf(o.bytes), mentions: ["'a'", "'b'", "overlap"])
    }

    /// Every prefix of the stories260K header (and a sample of cut points in its data) fails cleanly.
    func testTruncatedGGUFAtManyCutPoints() throws {
        let full = try [UInt8](Data(contentsOf: TestPaths.stories260K))
        let g = try gguf(full)
        var cuts = Array(0 ..< g.dataOffset)
        cuts += stride(from: g.dataOffset, to: full.count, by: 4099)
        cuts.append(full.count - 1)
        for n in cuts {
            assertFormatError(try gguf(Array(full[..<n])), mentions: ["test.gguf"])
        }
    }

    func testSafetensorsErrors() throws {
        let ok = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        XCTAssertEqual(try st(header: ok, data: 16).tensor("w")?.shape, [2, 2])
        assertFormatError(try st([1, 2, 3]), mentions: ["test.safetensors", "too short"])
        assertFormatError(try st(header: ok, data: 16, declared: UInt64.max), mentions: ["header length"])
        assertFormatError(try st(header: ok, data: 16, declared: 1 << 26), mentions: ["header length"])
        assertFormatError(try st(header: ok, data: 16, declared: 0), mentions: ["header length"])
        assertFormatError(try st(header: "[1,2,3]", data: 0), mentions: ["JSON object"])
        assertFormatError(try st(header: "{\"w\":", data: 0), mentions: ["JSON"])
        assertFormatError(try st(header: "{\"w\": 3}", data: 0), mentions: ["'w'", "not an object"])
        assertFormatError(try st(header: #"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, data: 4), mentions: ["'w'", "dtype"])
        assertFormatError(try st(header: #"{"w":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}"#, data: 4), mentions: ["'w'", "unknown dtype 'X9'"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: 4), mentions: ["'w'", "shape"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: 4), mentions: ["'w'", "shape"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, data: 4), mentions: ["'w'", "shape"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: 4), mentions: ["'w'", "overflow"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, data: 4), mentions: ["'w'", "outside"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: 4), mentions: ["'w'", "outside"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: 4), mentions: ["'w'"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,1e30]}}"#, data: 4), mentions: ["'w'", "data_offsets"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, data: 4), mentions: ["'w'", "data_offsets"])
        assertFormatError(try st(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: 8), mentions: ["'w'", "needs 8"])
        assertFormatError(try st(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12), mentions: ["overlap"])
        assertFormatError(try st(header: #"{"__metadata__":{"a":1}}"#, data: 0), mentions: ["__metadata__", "'a'"])
        assertFormatError(try st(header: #"{"__metadata__":[]}"#, data: 0), mentions: ["__metadata__"])
        // Deep nesting is refused by the JSON parser, not a stack overflow.
        assertFormatError(try st(header: "{\"w\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}", data: 0), mentions: ["JSON"])
        // A newline in a tensor name does not break the one-line message.
        assertFormatError(try st(header: #"{"w\nx":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}"#, data: 4), mentions: ["X9"])
    }

    func testTruncatedSafetensors() throws {
        let full = try [UInt8](Data(contentsOf: TestPaths.fixtures.appendingPathComponent("small.safetensors")))
        XCTAssertNoThrow(try st(full))
        for n in 0 ..< full.count {
            assertFormatError(try st(Array(full[..<n])), mentions: ["test.safetensors"])
        }
    }

    func testMappedFileErrors() throws {
        assertFormatError(try MappedFile(url: URL(fileURLWithPath: "/nonexistent/x.gguf")), mentions: ["/nonexistent/x.gguf"])
        assertFormatError(try MappedFile(url: URL(fileURLWithPath: "/tmp")), mentions: ["/tmp", "regular file"])
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.gguf")
        try Data().write(to: empty)
        XCTAssertEqual(try MappedFile(url: empty).bytes.count, 0)
        assertFormatError(try GGUFFile(url: empty), mentions: ["empty.gguf"])
        assertFormatError(try SafetensorsFile(url: empty), mentions: ["empty.gguf"])
    }

    // MARK: seeded mutation fuzzing

    /// Deterministic byte flips, random 64-bit overwrites (to hit lengths and counts) and truncations of the
    /// stories260K header region and of a small safetensors file: every outcome is success or a FormatError,
    /// and on success every tensor lies inside the buffer.
    func testSeededMutationsNeverCrash() throws {
        let gg = try [UInt8](Data(contentsOf: TestPaths.stories260K))
        let headerEnd = try gguf(gg).dataOffset
        let sf = try [UInt8](Data(contentsOf: TestPaths.fixtures.appendingPathComponent("small.safetensors")))
        let sfHeaderEnd = 8 + Int(sf.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var rng = FuzzRNG(seed: 0x5EED_F0F0)
        var outcomes = [String: Int]()
        let start = Date()
        // PERSONA_FUZZ_ITERATIONS raises the count for a longer run by hand.
        let iterations = ProcessInfo.processInfo.environment["PERSONA_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 2000
        for i in 0 ..< iterations {
            let isGGUF = i % 2 == 0
            var b = isGGUF ? gg : sf
            mutate(&b, region: isGGUF ? headerEnd : sfHeaderEnd, rng: &rng)
            do {
                let store: TensorStore = isGGUF ? try gguf(b) : try st(b)
                checkInside(store)
                outcomes["ok", default: 0] += 1
            } catch is FormatError {
                outcomes["error", default: 0] += 1
            } catch {
                XCTFail("iteration \(i): non-FormatError \(error)")
            }
        }
        XCTAssertGreaterThan(outcomes["error", default: 0], 100, "\(outcomes)")
        XCTAssertGreaterThan(outcomes["ok", default: 0], 10, "\(outcomes)")
        if iterations == 2000 { XCTAssertLessThan(Date().timeIntervalSince(start), 60) }
    }

    private func mutate(_ b: inout [UInt8], region: Int, rng: inout FuzzRNG) {
        let kind = rng.next() % 5
        let pos = Int(rng.next() % UInt64(max(region, 1)))
        switch kind {
        case 0: b[pos] ^= UInt8(1 << (rng.next() % 8))
        case 1: b[pos] = UInt8(truncatingIfNeeded: rng.next())
        case 2:  // a random or extreme 64-bit value over a length/count/offset-sized field
            let vals: [UInt64] = [rng.next(), UInt64.max, 1 << 63, 0, UInt64(rng.next() % 1_000_000)]
            let v = vals[Int(rng.next() % UInt64(vals.count))]
            for k in 0 ..< 8 where pos + k < b.count { b[pos + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        case 3: b.removeSubrange(pos...)
        default:
            for _ in 0 ..< 1 + Int(rng.next() % 8) {
                let p = Int(rng.next() % UInt64(max(region, 1)))
                b[p] = UInt8(truncatingIfNeeded: rng.next())
            }
        }
    }

    private func checkInside(_ s: TensorStore) {
        for n in s.tensorNames {
            guard let t = s.tensor(n), let owner = t.owner as? MappedFile, let base = owner.bytes.baseAddress else {
                XCTFail("tensor \(n) has no backing buffer"); continue
            }
            XCTAssertTrue(t.data >= base && t.data + t.byteCount <= base + owner.bytes.count, n)
            if case let .success(size) = expectedByteCount(dtype: t.dtype, shape: t.shape) {
                XCTAssertEqual(size, t.byteCount, n)
            } else {
                XCTFail("tensor \(n) has an invalid shape")
            }
        }
    }
}

