import Foundation
import XCTest
@testable import PersonaFormats
import PersonaTensor

/// Files written by the Python `safetensors` package, read back by ours; our writer checked against the spec.
final class SafetensorsTests: XCTestCase {
    func testReadsPythonWrittenFile() throws {
        let ex = try XCTUnwrap(try TestPaths.expected()["safetensors"] as? [String: Any])
        let f = try SafetensorsFile(url: TestPaths.fixtures.appendingPathComponent("small.safetensors"))
        XCTAssertEqual(f.metadata, ex["metadata"] as? [String: String])
        let tensors = try XCTUnwrap(ex["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(f.tensorNames, tensors.keys.sorted())
        XCTAssertTrue(f.unsupportedTensors.isEmpty)
        for (name, e) in tensors {
            let t = try XCTUnwrap(f.tensor(name), name)
            XCTAssertEqual(t.dtype.rawValue, e["dtype"] as? String, name)
            XCTAssertEqual(t.shape, e["shape"] as? [Int], name)
            XCTAssertEqual(hexString(t.bytes), e["hex"] as? String, name)
            let values = try XCTUnwrap(e["values"] as? [Double])
            XCTAssertEqual(t.elementCount, values.count, name)
            switch t.dtype {
            case .f32: XCTAssertEqual(floats(t), values.map { Float($0) }, name)
            case .bf16:
                let ours = (0 ..< t.elementCount).map {
                    Float(bitPattern: UInt32(t.data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16)
                }
                XCTAssertEqual(ours, values.map { Float($0) }, name)
            default: break  // f16 checked through the exact bytes above
            }
        }
        XCTAssertEqual(f.tensor("d.scalar")?.shape, [])
        XCTAssertEqual(f.tensor("d.scalar")?.elementCount, 1)
        XCTAssertEqual(f.tensor("e.empty")?.byteCount, 0)
    }

    func testShardedFolder() throws {
        let ex = try XCTUnwrap((try TestPaths.expected()["safetensors"] as? [String: Any])?["sharded"] as? [String: [Double]])
        let m = try SafetensorsModel(directory: TestPaths.fixtures.appendingPathComponent("sharded"))
        XCTAssertEqual(m.tensorNames, ex.keys.sorted())
        XCTAssertEqual(m.shards.count, 2)
        XCTAssertEqual(m.tensor("model.embed.weight").map(floats), ex["model.embed.weight"]?.map { Float($0) })
        XCTAssertEqual(m.tensor("model.layers.0.w")?.dtype, .f16)
        XCTAssertEqual(m.tensor("model.layers.1.w")?.dtype, .bf16)
        XCTAssertEqual(m.tensor("model.layers.1.w")?.shape, [3])
    }

    func testSingleFileFolder() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: TestPaths.fixtures.appendingPathComponent("small.safetensors"),
                                         to: dir.appendingPathComponent("model.safetensors"))
        let m = try SafetensorsModel(directory: dir)
        XCTAssertEqual(m.tensorNames.count, 6)
        XCTAssertNotNil(m.tensor("a.f32"))
    }

    func testShardedIndexErrors() throws {
        let src = TestPaths.fixtures.appendingPathComponent("sharded")
        let s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors"
        func folder(index: String, copyShards: [String] = [s1, s2]) throws -> URL {
            let dir = try TestPaths.tempDir()
            for s in copyShards { try FileManager.default.copyItem(at: src.appendingPathComponent(s), to: dir.appendingPathComponent(s)) }
            try index.write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
            return dir
        }
        let good = try String(contentsOf: src.appendingPathComponent("model.safetensors.index.json"), encoding: .utf8)
        var dirs = [URL]()
        defer { for d in dirs { try? FileManager.default.removeItem(at: d) } }

        // A listed shard is missing.
        dirs.append(try folder(index: good, copyShards: [s1]))
        assertFormatError(try SafetensorsModel(directory: dirs.last!), mentions: [s2, "does not exist"])
        // A tensor mapped to the wrong shard.
        dirs.append(try folder(index: good.replacingOccurrences(of: "\"model.layers.1.w\": \"\(s2)\"", with: "\"model.layers.1.w\": \"\(s1)\"")))
        assertFormatError(try SafetensorsModel(directory: dirs.last!), mentions: ["model.layers.1.w", "not in its shard"])
        // A tensor listed that no shard has.
        dirs.append(try folder(index: good.replacingOccurrences(of: "\"weight_map\": {", with: "\"weight_map\": {\"ghost\": \"\(s1)\",")))
        assertFormatError(try SafetensorsModel(directory: dirs.last!), mentions: ["ghost"])
        // Path traversal in a shard name.
        dirs.append(try folder(index: good.replacingOccurrences(of: "\"model.layers.1.w\": \"\(s2)\"", with: "\"model.layers.1.w\": \"../\(s2)\"")))
        assertFormatError(try SafetensorsModel(directory: dirs.last!), mentions: ["plain file name"])
        // ... also with a combining mark after the "/" (one Swift Character with it, still a separator)
        dirs.append(try folder(index: good.replacingOccurrences(of: "\"model.layers.1.w\": \"\(s2)\"", with: "\"model.layers.1.w\": \"../\u{301}\(s2)\"")))
        assertFormatError(try SafetensorsModel(directory: dirs.last!), mentions: ["plain file name"])
        // Not JSON / no weight_map.
        dirs.append(try folder(index: "{\"weight_map\": [1,2"))
        assertFormatError(try SafetensorsModel(directory: dirs.last!), mentions: ["index.json"])
        dirs.append(try folder(index: "{}"))
        assertFormatError(try SafetensorsModel(directory: dirs.last!), mentions: ["weight_map"])
        // The same tensor in two shards.
        let dup = try TestPaths.tempDir()
        dirs.append(dup)
        try SafetensorsWriter.write([("x", .f32, [1], dataFromFloats([1]))], metadata: [:], to: dup.appendingPathComponent("a.safetensors"))
        try SafetensorsWriter.write([("x", .f32, [1], dataFromFloats([2]))], metadata: [:], to: dup.appendingPathComponent("b.safetensors"))
        try #"{"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}}"#.write(to: dup.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        assertFormatError(try SafetensorsModel(directory: dup), mentions: ["'x'", "two shards"])
        // Empty folder.
        let empty = try TestPaths.tempDir()
        dirs.append(empty)
        assertFormatError(try SafetensorsModel(directory: empty), mentions: ["no model.safetensors"])
    }

    func testUnsupportedButValidDTypeIsListedNotServed() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("i64.safetensors")
        try writeRawSafetensors(header: #"{"pos":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"w":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#,
                                data: Data(count: 20), to: url)
        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(f.tensorNames, ["w"])
        XCTAssertEqual(f.unsupportedTensors, ["pos": "I64"])
    }

    /// Our writer's output: read back by our reader, and the header laid out as the spec says
    /// (u64 LE length, JSON object, space padding to 8 bytes, offsets relative to the data section, packed in order).
    /// Checked by hand with Python too: `safetensors.safe_open` reads the file this test writes (kept via
    /// PERSONA_KEEP_SAFETENSORS=/tmp/w.safetensors) with the same metadata, dtypes, shapes and values (safetensors 0.8.0).
    func testWriterRoundTripAndHeaderLayout() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("out.safetensors")
        let a = dataFromFloats([1, -2, 3.5, 0.25, 1e-8, -0.0])
        let b = Data([0x00, 0x3c, 0x00, 0xc0])          // f16 1.0, -2.0
        let c = Data([0x80, 0x3f, 0x20, 0x41, 0, 0])    // bf16 1.0, 10.0, 0
        try SafetensorsWriter.write([("layer.a", .f32, [2, 3], a), ("b\"q\\uote", .f16, [2], b), ("c", .bf16, [1, 3], c)],
                                    metadata: ["format": "pt", "k\n": "v\u{1}"], to: url)
        if let keep = ProcessInfo.processInfo.environment["PERSONA_KEEP_SAFETENSORS"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: url, to: URL(fileURLWithPath: keep))
        }
        let raw = try Data(contentsOf: url)
        let n = raw.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(raw.count, 8 + n + a.count + b.count + c.count)
        let headerBytes = raw.subdata(in: 8 ..< 8 + n)
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: headerBytes) as? [String: Any])
        XCTAssertEqual(header["__metadata__"] as? [String: String], ["format": "pt", "k\n": "v\u{1}"])
        let la = try XCTUnwrap(header["layer.a"] as? [String: Any])
        XCTAssertEqual(la["dtype"] as? String, "F32")
        XCTAssertEqual(la["shape"] as? [Int], [2, 3])
        XCTAssertEqual(la["data_offsets"] as? [Int], [0, 24])
        XCTAssertEqual((header["b\"q\\uote"] as? [String: Any])?["data_offsets"] as? [Int], [24, 28])
        XCTAssertEqual((header["c"] as? [String: Any])?["data_offsets"] as? [Int], [28, 34])
        XCTAssertEqual((header["c"] as? [String: Any])?["dtype"] as? String, "BF16")
        XCTAssertEqual(raw.subdata(in: 8 + n ..< raw.count), a + b + c)
        // Padding is spaces after the closing brace.
        let text = String(decoding: headerBytes, as: UTF8.self)
        XCTAssertTrue(text.trimmingCharacters(in: .init(charactersIn: " ")).hasSuffix("}"))

        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(f.metadata["k\n"], "v\u{1}")
        XCTAssertEqual(f.tensor("layer.a").map(floats), [1, -2, 3.5, 0.25, 1e-8, -0.0])
        XCTAssertEqual(f.tensor("b\"q\\uote").map { Data($0.bytes) }, b)
        XCTAssertEqual(f.tensor("c")?.shape, [1, 3])
        XCTAssertEqual(f.tensor("c").map { Data($0.bytes) }, c)
        // No temporary files left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out.safetensors"])
    }

    func testWriterRejectsBadInput() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.safetensors")
        assertFormatError(try SafetensorsWriter.write([("a", .f32, [2], Data(count: 4))], metadata: [:], to: url), mentions: ["'a'"])
        assertFormatError(try SafetensorsWriter.write([("q", .q8_0, [32], Data(count: 34))], metadata: [:], to: url), mentions: ["'q'"])
        assertFormatError(try SafetensorsWriter.write([("a", .f32, [1], Data(count: 4)), ("a", .f32, [1], Data(count: 4))], metadata: [:], to: url), mentions: ["'a'"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}

/// Writes a safetensors file with a hand-made header (for hostile-input tests).
func writeRawSafetensors(header: String, data: Data, to url: URL, declaredLength: UInt64? = nil) throws {
    let h = Data(header.utf8)
    var out = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(h)
    out.append(data)
    try out.write(to: url)
}
