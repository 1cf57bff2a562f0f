import Foundation
import XCTest
@testable import PersonaFormats
import PersonaTensor

/// Our GGUF reader against the values the Python `gguf` package reads from the same files.
final class GGUFReaderTests: XCTestCase {
    func testStories260KMatchesPythonGGUF() throws {
        let ex = try XCTUnwrap(try TestPaths.expected()["stories260K"] as? [String: Any])
        let g = try GGUFFile(url: TestPaths.stories260K)
        XCTAssertEqual(g.version, ex["version"] as? Int)
        XCTAssertEqual(g.architecture, "llama")
        XCTAssertEqual(g.metadata["llama.block_count"]?.int, 5)
        XCTAssertEqual(g.metadata["llama.embedding_length"]?.int, 64)
        XCTAssertEqual(g.metadata["tokenizer.ggml.tokens"]?.stringArray?.count, 512)
        XCTAssertEqual(g.metadata["tokenizer.ggml.scores"]?.floatArray?.count, 512)
        XCTAssertEqual(g.metadata["tokenizer.ggml.token_type"]?.intArray?.count, 512)
        XCTAssertEqual(g.alignment, 32)

        let meta = try XCTUnwrap(ex["metadata"] as? [String: [String: Any]])
        XCTAssertEqual(Set(g.metadata.keys), Set(meta.keys))
        for (key, m) in meta {
            let v = try XCTUnwrap(g.metadata[key], key)
            if m["array"] as? Bool == true {
                let arr = try XCTUnwrap(v.array, key)
                XCTAssertEqual(arr.count, m["count"] as? Int, key)
                let head = try XCTUnwrap(m["head"] as? [Any]), tail = try XCTUnwrap(m["tail"] as? [Any])
                assertSame(Array(arr.prefix(head.count)), head, key)
                assertSame(Array(arr.suffix(tail.count)), tail, key)
                if case let .array(a) = v { XCTAssertEqual(a.first?.typeCode, UInt32(m["type"] as! Int), key) }
            } else {
                XCTAssertEqual(v.typeCode, UInt32(m["type"] as! Int), key)
                assertSame([v], [m["value"]!], key)
            }
        }

        let tensors = try XCTUnwrap(ex["tensors"] as? [[String: Any]])
        XCTAssertEqual(g.tensorNames, tensors.map { $0["name"] as! String }.sorted())
        XCTAssertEqual(g.tensorNamesInFileOrder, tensors.map { $0["name"] as! String })
        for t in tensors {
            let name = t["name"] as! String
            let info = try XCTUnwrap(g.tensor(name), name)
            XCTAssertEqual(info.dtype.ggmlType, UInt32(t["ggml_type"] as! Int), name)
            XCTAssertEqual(info.shape, t["shape"] as? [Int], name)
            XCTAssertEqual(info.byteCount, t["n_bytes"] as? Int, name)
            let base = try XCTUnwrap((info.owner as? MappedFile)?.bytes.baseAddress)
            XCTAssertEqual(info.data - base, t["file_offset"] as? Int, name)
            let s = try XCTUnwrap(t["sample"] as? [String: Any])
            let vals = floats(info)
            for (i, v) in zip(s["indices"] as! [Int], s["values"] as! [Double]) {
                XCTAssertEqual(vals[i], Float(v), "\(name)[\(i)]")
            }
            let sum = vals.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, s["sum"] as! Double, accuracy: 1e-9 * max(1, abs(sum)), name)
        }
        XCTAssertEqual(g.tensor("token_embd.weight")?.shape, [512, 64])
        XCTAssertEqual(g.tensor("blk.0.ffn_down.weight")?.shape, [64, 172])
        XCTAssertEqual(g.tensor("blk.0.attn_k.weight")?.shape, [32, 64])
        XCTAssertNil(g.tensor("nope"))
    }

    func testVocabOnlyGGUFsMatchPythonGGUF() throws {
        let ex = try XCTUnwrap(try TestPaths.expected()["vocab"] as? [String: [String: Any]])
        XCTAssertGreaterThanOrEqual(ex.count, 7)
        for (file, e) in ex.sorted(by: { $0.key < $1.key }) {
            let g = try GGUFFile(url: TestPaths.vocabDir.appendingPathComponent(file))
            XCTAssertEqual(g.metadata.count, e["kv_count"] as? Int, file)
            XCTAssertEqual(g.tensorNames.count, e["tensor_count"] as? Int, file)
            XCTAssertEqual(g.architecture, e["general.architecture"] as? String, file)
            XCTAssertEqual(g.metadata["tokenizer.ggml.model"]?.string, e["tokenizer.ggml.model"] as? String, file)
            XCTAssertEqual(g.metadata["tokenizer.ggml.pre"]?.string, e["tokenizer.ggml.pre"] as? String, file)
            XCTAssertEqual(g.metadata["tokenizer.ggml.bos_token_id"]?.int, e["tokenizer.ggml.bos_token_id"] as? Int, file)
            XCTAssertEqual(g.metadata["tokenizer.ggml.eos_token_id"]?.int, e["tokenizer.ggml.eos_token_id"] as? Int, file)
            for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"] {
                guard let a = e[key] as? [String: Any] else {
                    XCTAssertNil(g.metadata[key], "\(file) \(key)")
                    continue
                }
                let arr = try XCTUnwrap(g.metadata[key]?.array, "\(file) \(key)")
                XCTAssertEqual(arr.count, a["count"] as? Int, "\(file) \(key)")
                let head = a["head"] as! [Any], tail = a["tail"] as! [Any]
                assertSame(Array(arr.prefix(head.count)), head, "\(file) \(key)")
                assertSame(Array(arr.suffix(tail.count)), tail, "\(file) \(key)")
                assertSame([arr[a["mid_index"] as! Int]], [a["mid"]!], "\(file) \(key) mid")
            }
        }
    }

    /// The largest vocab (262k tokens, 515k merges) parses without quadratic work.
    func testLargeVocabParsesQuickly() throws {
        let start = Date()
        let g = try GGUFFile(url: TestPaths.vocabDir.appendingPathComponent("ggml-vocab-gemma-4.gguf"))
        let tokens = try XCTUnwrap(g.metadata["tokenizer.ggml.tokens"]?.stringArray)
        XCTAssertEqual(tokens.count, 262_144)
        // Generous bound for a debug build on a shared 2-core machine; quadratic parsing would take minutes.
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }

    private func assertSame(_ ours: [GGUFValue], _ theirs: [Any], _ ctx: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, theirs.count, ctx, file: file, line: line)
        for (o, t) in zip(ours, theirs) {
            switch o {
            case let .string(s): XCTAssertEqual(s, t as? String, ctx, file: file, line: line)
            case let .float32(f): XCTAssertEqual(f, (t as? NSNumber).map { Float($0.doubleValue) }, ctx, file: file, line: line)
            case let .float64(d): XCTAssertEqual(d, (t as? NSNumber)?.doubleValue, ctx, file: file, line: line)
            case let .bool(b): XCTAssertEqual(b, t as? Bool, ctx, file: file, line: line)
            default: XCTAssertEqual(o.int, (t as? NSNumber)?.intValue, ctx, file: file, line: line)
            }
        }
    }
}
