import Foundation
import XCTest
@testable import PersonaFormats
import PersonaTensor

final class GGUFWriterTests: XCTestCase {
    /// Writes every value type and several dtypes (incl. quantised rows), then reads the file back with our reader.
    /// Checked by hand with Python too: `gguf.GGUFReader` reads a file written by this test (kept via
    /// PERSONA_KEEP_GGUF=/tmp/w.gguf) with the same keys, values, shapes (ne reversed) and bytes (gguf 0.19.0).
    func testRoundTrip() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.gguf")
        var w = GGUFWriter()
        let meta: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(60000)), ("i16", .int16(-30000)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-2_000_000_000)),
            ("u64", .uint64(UInt64.max)), ("i64", .int64(Int64.min)),
            ("f32", .float32(1.5)), ("f64", .float64(-2.25)), ("b", .bool(true)),
            ("s", .string("héllo ▁ world")),
            ("tokens", .array([.string("<s>"), .string(""), .string("Ġthe")])),
            ("scores", .array([.float32(-1), .float32(0.5)])),
            ("nested", .array([.array([.int32(1), .int32(2)]), .array([.string("x")])])),
            ("empty", .array([])),
        ]
        for (k, v) in meta { w.set(k, v) }
        w.set("u8", .uint8(201))  // replacing keeps one entry
        let f32 = dataFromFloats((0 ..< 12).map { Float($0) - 5.5 })
        let q8 = Data((0 ..< 2 * 34).map { UInt8($0 & 0xff) })
        let q4k = Data((0 ..< 144).map { UInt8(($0 * 7) & 0xff) })
        try w.addTensor(name: "a", dtype: .f32, shape: [3, 4], data: f32)
        try w.addTensor(name: "q", dtype: .q8_0, shape: [2, 32], data: q8)
        try w.addTensor(name: "k", dtype: .q4_k, shape: [1, 1, 256], data: q4k)
        try w.addTensor(name: "h", dtype: .f16, shape: [3], data: Data([0, 0x3c, 0, 0xc0, 0, 0]))
        try w.write(to: url)
        if let keep = ProcessInfo.processInfo.environment["PERSONA_KEEP_GGUF"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: url, to: URL(fileURLWithPath: keep))
        }

        let g = try GGUFFile(url: url)
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.metadataKeys, meta.map(\.0))
        for (k, v) in meta where k != "u8" { XCTAssertEqual(g.metadata[k], v, k) }
        XCTAssertEqual(g.metadata["u8"], .uint8(201))
        XCTAssertEqual(g.metadata["u64"]?.int, nil)  // above Int.max
        XCTAssertEqual(g.metadata["i64"]?.int, Int(Int64.min))
        XCTAssertEqual(g.metadata["tokens"]?.stringArray, ["<s>", "", "Ġthe"])
        XCTAssertEqual(g.metadata["scores"]?.floatArray, [-1, 0.5])
        XCTAssertEqual(g.tensorNamesInFileOrder, ["a", "q", "k", "h"])
        XCTAssertEqual(g.tensor("a")?.shape, [3, 4])
        XCTAssertEqual(g.tensor("a").map { Data($0.bytes) }, f32)
        XCTAssertEqual(g.tensor("q")?.dtype, .q8_0)
        XCTAssertEqual(g.tensor("q")?.shape, [2, 32])
        XCTAssertEqual(g.tensor("q").map { Data($0.bytes) }, q8)
        XCTAssertEqual(g.tensor("k")?.shape, [1, 1, 256])
        XCTAssertEqual(g.tensor("k").map { Data($0.bytes) }, q4k)
        XCTAssertEqual(g.tensor("h")?.dtype, .f16)
        for n in g.tensorNames {
            let base = try XCTUnwrap((g.tensor(n)?.owner as? MappedFile)?.bytes.baseAddress)
            XCTAssertEqual((g.tensor(n)!.data - base) % 32, 0, "\(n) aligned")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["w.gguf"])
    }

    func testWriterRejectsBadTensors() throws {
        var w = GGUFWriter()
        assertFormatError(try w.addTensor(name: "q", dtype: .q4_0, shape: [2, 16], data: Data(count: 18)), mentions: ["'q'", "block size"])
        assertFormatError(try w.addTensor(name: "a", dtype: .f32, shape: [2], data: Data(count: 4)), mentions: ["'a'", "8 bytes"])
        assertFormatError(try w.addTensor(name: "a", dtype: .f32, shape: [1, 1, 1, 1, 1], data: Data(count: 4)), mentions: ["'a'", "dimensions"])
        try w.addTensor(name: "a", dtype: .f32, shape: [1], data: Data(count: 4))
        assertFormatError(try w.addTensor(name: "a", dtype: .f32, shape: [1], data: Data(count: 4)), mentions: ["duplicate", "'a'"])
        w.set("mixed", .array([.int32(1), .string("x")]))
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        assertFormatError(try w.write(to: dir.appendingPathComponent("m.gguf")), mentions: ["mixed"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    /// Deferred tensors are made only by `write`, one at a time in file order, and give the same bytes as tensors
    /// given up front; a wrong size or a failing maker leaves no file and an earlier file at that path unchanged.
    func testDeferredTensors() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dataFromFloats((0 ..< 12).map { Float($0) * 0.25 }), q = Data((0 ..< 2 * 34).map { UInt8(($0 * 5) & 0xff) })
        let h = Data([0, 0x3c, 0, 0xc0, 0, 0])
        var eager = GGUFWriter(), lazy = GGUFWriter()
        eager.set("general.architecture", .string("llama"))
        lazy.set("general.architecture", .string("llama"))
        try eager.addTensor(name: "a", dtype: .f32, shape: [3, 4], data: a)
        try eager.addTensor(name: "q", dtype: .q8_0, shape: [2, 32], data: q)
        try eager.addTensor(name: "h", dtype: .f16, shape: [3], data: h)
        var made: [String] = []
        try lazy.addTensor(name: "a", dtype: .f32, shape: [3, 4]) { made.append("a"); return a }
        try lazy.addTensor(name: "q", dtype: .q8_0, shape: [2, 32], data: q)
        try lazy.addTensor(name: "h", dtype: .f16, shape: [3]) { made.append("h"); return h }
        XCTAssertEqual(made, [], "nothing is made before write")
        let e = dir.appendingPathComponent("e.gguf"), l = dir.appendingPathComponent("l.gguf")
        try eager.write(to: e)
        try lazy.write(to: l)
        XCTAssertEqual(made, ["a", "h"])
        XCTAssertEqual(try Data(contentsOf: l), try Data(contentsOf: e))

        // the header checks apply to deferred tensors when they are added
        var bad = GGUFWriter()
        assertFormatError(try bad.addTensor(name: "b", dtype: .q4_0, shape: [2, 16]) { Data(count: 18) }, mentions: ["'b'", "block size"])
        try bad.addTensor(name: "b", dtype: .f32, shape: [2]) { Data(count: 4) }
        assertFormatError(try bad.addTensor(name: "b", dtype: .f32, shape: [2]) { Data(count: 8) }, mentions: ["duplicate", "'b'"])
        // a maker returning the wrong size, or throwing, at write time: the error names the tensor, nothing is left
        // behind and the file already at the path stays as it was
        let keep = dir.appendingPathComponent("keep.gguf")
        try FileManager.default.copyItem(at: e, to: keep)
        assertFormatError(try bad.write(to: keep), mentions: ["'b'", "8 bytes", "made 4"])
        var failing = GGUFWriter()
        try failing.addTensor(name: "a", dtype: .f32, shape: [3, 4], data: a)
        try failing.addTensor(name: "c", dtype: .f32, shape: [1]) { throw FormatError("cannot make c") }
        assertFormatError(try failing.write(to: keep), mentions: ["cannot make c"])
        XCTAssertEqual(try Data(contentsOf: keep), try Data(contentsOf: e))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), ["e.gguf", "l.gguf", "keep.gguf"])
    }
}
