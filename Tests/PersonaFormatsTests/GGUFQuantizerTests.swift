import Foundation
import PersonaHash
import PersonaTensor
import XCTest
@testable import PersonaFormats

/// `GGUFQuantizer` against llama.cpp's own quantizer (llama_model_quantize, via Scripts/make_convert_fixtures.py):
/// the same per-tensor types, the same bytes in every tensor, the same metadata keys, the same file.
final class GGUFQuantizerTests: XCTestCase {
    static let folder = TestPaths.fixtures.appendingPathComponent("quantize")

    static func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: folder.appendingPathComponent("llama_quantize.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func sha256(_ p: UnsafeRawPointer, _ n: Int) -> String {
        var h = SHA256Hasher()
        h.update(UnsafeRawBufferPointer(start: p, count: n))
        return h.hexDigest()
    }

    static func sha256(file url: URL) throws -> String {  // small files only (debug builds hash slowly)
        var h = SHA256Hasher()
        h.update(try Data(contentsOf: url))
        return h.hexDigest()
    }

    func testEveryFileTypeEqualsLlamaQuantize() throws {
        let outputs = try XCTUnwrap(try Self.expected()["outputs"] as? [String: [String: Any]])
        let source = try GGUFFile(url: Self.folder.appendingPathComponent("source_f16.gguf"))
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(outputs.count, GGUFQuantizer.FileType.allCases.count * 2)
        for type in GGUFQuantizer.FileType.allCases {
            for pure in [false, true] {
                let key = type.rawValue + (pure ? "-pure" : "")
                let want = try XCTUnwrap(outputs[key], key)
                let url = dir.appendingPathComponent("\(key).gguf")
                try GGUFQuantizer(fileType: type, pure: pure).quantize(source, to: url)
                let ours = try GGUFFile(url: url)
                let tensors = try XCTUnwrap(want["tensors"] as? [[String: String]])
                XCTAssertEqual(ours.tensorNamesInFileOrder, tensors.map { $0["name"]! }, "\(key): tensor order")
                for t in tensors {
                    let name = t["name"]!
                    let mine = try XCTUnwrap(ours.tensor(name), "\(key) \(name)")
                    XCTAssertEqual(mine.dtype.rawValue.uppercased(), t["type"]!.uppercased(), "\(key) \(name): type")
                    XCTAssertEqual(Self.sha256(mine.data, mine.byteCount), t["sha256"], "\(key) \(name): bytes")
                }
                XCTAssertEqual(ours.metadataKeys, want["keys"] as? [String], "\(key): metadata keys")
                XCTAssertEqual(ours.metadata["general.file_type"]?.int, Int(type.llamaFileType))
                XCTAssertEqual(try Self.sha256(file: url), want["file_sha256"] as? String, "\(key): whole file")
            }
        }
    }

    /// The output is streamed: each tensor is quantised when the writer reaches it, after the header and every earlier
    /// tensor are already in the temporary file (so memory holds one output tensor, not the model); the file equals
    /// llama.cpp's as above.
    func testQuantizeStreamsTensorByTensor() throws {
        let source = try GGUFFile(url: Self.folder.appendingPathComponent("source_f16.gguf"))
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("q8.gguf")
        var sizes: [Int] = []   // the temporary file's size when each tensor has just been made
        let plans = try GGUFQuantizer(fileType: .q8_0).quantize(source, to: url) { _, _ in
            let tmp = (try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.filter { $0.hasPrefix("q8.gguf.tmp-") } ?? []
            XCTAssertEqual(tmp.count, 1, "one temporary file while writing")
            let size = tmp.first.flatMap { try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($0).path)[.size] as? Int }
            sizes.append(size ?? -1)
        }
        XCTAssertEqual(sizes.count, plans.count)
        let ours = try GGUFFile(url: url)
        let total = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        // before tensor k is made, the file holds everything up to tensor k's offset (the header padded to 32 first)
        let names = ours.tensorNamesInFileOrder
        let base = try XCTUnwrap((ours.tensor(names[0])?.owner as? MappedFile)?.bytes.baseAddress)
        for (k, n) in names.enumerated() {
            let offset = ours.tensor(n)!.data - base
            XCTAssertGreaterThanOrEqual(sizes[k], offset, "tensor \(k) (\(n)) made before the ones before it were written")
            XCTAssertLessThan(sizes[k], offset + ours.tensor(n)!.byteCount, "tensor \(k) (\(n)) not yet written when made")
        }
        XCTAssertLessThan(sizes.last!, total)
        let want = try XCTUnwrap((try Self.expected()["outputs"] as? [String: [String: Any]])?["Q8_0"])
        XCTAssertEqual(try Self.sha256(file: url), want["file_sha256"] as? String)
    }

    /// The file types whose attn_v type depends on n_gqa() >= 4, on the source with 8 query heads per 2 KV heads
    /// (head_count and rope.dimension_count patched in place, as Scripts/make_convert_fixtures.py does).
    func testGroupedQueryFileTypesEqualLlamaQuantize() throws {
        let outputs = try XCTUnwrap(try Self.expected()["gqa4"] as? [String: [String: Any]])
        var raw = try Data(contentsOf: Self.folder.appendingPathComponent("source_f16.gguf"))
        for (key, was, now) in [("llama.attention.head_count", UInt32(4), UInt32(8)), ("llama.rope.dimension_count", 64, 32)] {
            func field(_ v: UInt32) -> Data {
                var d = Data()
                withUnsafeBytes(of: UInt64(key.utf8.count).littleEndian) { d.append(contentsOf: $0) }
                d.append(contentsOf: Array(key.utf8))
                withUnsafeBytes(of: UInt32(4).littleEndian) { d.append(contentsOf: $0) }   // GGUF uint32
                withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) }
                return d
            }
            let range = try XCTUnwrap(raw.range(of: field(was)), key)
            raw.replaceSubrange(range, with: field(now))
        }
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("gqa4.gguf")
        try raw.write(to: src)
        let source = try GGUFFile(url: src)
        XCTAssertEqual(outputs.count, 4)
        for (name, want) in outputs {
            let type = try XCTUnwrap(GGUFQuantizer.FileType(name: name), name)
            let url = dir.appendingPathComponent("\(name).gguf")
            try GGUFQuantizer(fileType: type).quantize(source, to: url)
            let ours = try GGUFFile(url: url)
            for t in try XCTUnwrap(want["tensors"] as? [[String: String]]) {
                let mine = try XCTUnwrap(ours.tensor(t["name"]!), "\(name) \(t["name"]!)")
                XCTAssertEqual(mine.dtype.rawValue.uppercased(), t["type"]!.uppercased(), "gqa4 \(name) \(t["name"]!): type")
                XCTAssertEqual(Self.sha256(mine.data, mine.byteCount), t["sha256"], "gqa4 \(name) \(t["name"]!): bytes")
            }
            XCTAssertEqual(try Self.sha256(file: url), want["file_sha256"] as? String, "gqa4 \(name): whole file")
        }
    }

    /// llama.cpp's choices on a 576-wide model (rows not whole 256-blocks): the tied embedding falls back to Q8_0.
    func testOutputHeadRules() throws {
        let q = GGUFQuantizer(fileType: .q4_1)
        XCTAssertEqual(try q.targetType(name: "token_embd.weight", shape: [49152, 576], stored: .f16, tiedEmbeddings: true, file: "f"), .q8_0)
        XCTAssertEqual(try q.targetType(name: "token_embd.weight", shape: [49152, 576], stored: .f16, tiedEmbeddings: false, file: "f"), .q4_1)
        XCTAssertEqual(try q.targetType(name: "output.weight", shape: [49152, 512], stored: .f16, tiedEmbeddings: false, file: "f"), .q6_k)
        XCTAssertEqual(try q.targetType(name: "blk.0.attn_norm.weight", shape: [576], stored: .f32, tiedEmbeddings: true, file: "f"), .f32)
        XCTAssertEqual(try GGUFQuantizer(fileType: .q6_k).targetType(name: "blk.0.ffn_down.weight", shape: [576, 1536], stored: .f16, tiedEmbeddings: true, file: "f"), .q6_k)
        XCTAssertEqual(try GGUFQuantizer(fileType: .q6_k).targetType(name: "blk.0.ffn_up.weight", shape: [1536, 576], stored: .f16, tiedEmbeddings: true, file: "f"), .q8_0)
        XCTAssertEqual(try GGUFQuantizer(fileType: .q4_0, pure: true).targetType(name: "token_embd.weight", shape: [100, 64], stored: .f32, tiedEmbeddings: true, file: "f"), .q4_0)
        assertFormatError(try GGUFQuantizer(fileType: .q4_0).targetType(name: "blk.0.attn_q.weight", shape: [48, 48], stored: .f32, tiedEmbeddings: true, file: "m.gguf"),
                          mentions: ["m.gguf", "blk.0.attn_q.weight", "48", "q4_0"])
        XCTAssertEqual(GGUFQuantizer.FileType(name: "q5_1"), .q5_1)
        XCTAssertEqual(GGUFQuantizer.FileType(name: "q4_k_m"), .q4_k_m)
        XCTAssertEqual(GGUFQuantizer.FileType(name: "iq4_xs"), .iq4_xs)
        XCTAssertNil(GGUFQuantizer.FileType(name: "iq2_xxs"))   // needs an importance matrix in llama.cpp
        // Q3_K_M on 30 layers: ffn_down in Q5_K for the first sixteenth, else Q4_K; attn_v Q5_K for the first 2
        let q3 = GGUFQuantizer(fileType: .q3_k_m)
        XCTAssertEqual(try (0..<30).map { try q3.targetType(name: "blk.\($0).ffn_down.weight", shape: [576, 1536], stored: .f16, tiedEmbeddings: true, layers: 30, file: "f") },
                       [.q5_k] + Array(repeating: DType.q4_k, count: 29))
        XCTAssertEqual(try (0..<4).map { try q3.targetType(name: "blk.\($0).attn_v.weight", shape: [192, 2048], stored: .f16, tiedEmbeddings: true, layers: 30, file: "f") },
                       [.q5_k, .q5_k, .q4_k, .q4_k])
        // Q4_K_M on 30 layers: attn_v / ffn_down get Q6_K in the first and last eighth and every third between
        let m = GGUFQuantizer(fileType: .q4_k_m)
        let six = try (0..<30).filter { try m.targetType(name: "blk.\($0).ffn_down.weight", shape: [576, 1536], stored: .f16, tiedEmbeddings: true, layers: 30, file: "f") == .q6_k }
        XCTAssertEqual(six, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29])
        XCTAssertEqual(try m.targetType(name: "blk.3.ffn_down.weight", shape: [576, 1536], stored: .f16, tiedEmbeddings: true, layers: 30, file: "f"), .q4_k)
        XCTAssertEqual(try m.targetType(name: "blk.3.ffn_up.weight", shape: [1536, 576], stored: .f16, tiedEmbeddings: true, layers: 30, file: "f"), .q5_0)
    }

    /// llama-model-loader's order: tensors outside blocks first, then blocks by number (blk.10 after blk.9).
    func testTensorOrder() {
        let names = ["blk.10.a", "token_embd.weight", "blk.9.b", "blk.9.a", "output_norm.weight", "blk.1.z"]
        XCTAssertEqual(names.sorted(by: GGUFQuantizer.llamaOrder), ["output_norm.weight", "token_embd.weight", "blk.1.z", "blk.9.a", "blk.9.b", "blk.10.a"])
    }
}
