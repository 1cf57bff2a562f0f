import Foundation
import PersonaModels
import XCTest

/// Broken model files give a one-line error that names the file and what is wrong.
final class BadModelFileTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("persona-bad-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: TestPaths.fixtures.appendingPathComponent("llama2"), to: tmp)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func expectError(_ contains: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try ModelLoader.loadNetwork(path: tmp.path)
            XCTFail("expected an error", file: file, line: line)
        } catch {
            let msg = "\(error)"
            XCTAssertFalse(msg.contains("\n"), "error should be one line: \(msg)", file: file, line: line)
            for c in contains { XCTAssertTrue(msg.contains(c), "error '\(msg)' should mention '\(c)'", file: file, line: line) }
        }
    }

    func editConfig(_ edit: (inout [String: Any]) -> Void) throws {
        let url = tmp.appendingPathComponent("config.json")
        var d = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&d)
        try JSONSerialization.data(withJSONObject: d).write(to: url)
    }

    func testTruncatedSafetensors() throws {
        let url = tmp.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count / 2).write(to: url)
        expectError(["model.safetensors"])
    }

    func testWrongHeader() throws {
        let url = tmp.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: url)
        data.replaceSubrange(0..<8, with: [UInt8](repeating: 0xff, count: 8))
        try data.write(to: url)
        expectError(["model.safetensors"])
    }

    func testShapeMismatch() throws {
        try editConfig { $0["intermediate_size"] = ($0["intermediate_size"] as! Int) * 2 }
        expectError(["mlp.gate_proj.weight", "shape"])
    }

    func testUnknownArchitecture() throws {
        try editConfig { $0["model_type"] = "frobnicator" }
        expectError(["config.json", "frobnicator"])
    }

    func testMissingTensor() throws {
        try editConfig { $0["num_hidden_layers"] = ($0["num_hidden_layers"] as! Int) + 1 }
        expectError(["missing tensor", "model.layers."])
    }

    func testUnexpectedTensor() throws {
        try editConfig { $0["num_hidden_layers"] = ($0["num_hidden_layers"] as! Int) - 1 }
        expectError(["unexpected tensor"])
    }

    func testNotAGGUF() throws {
        let url = tmp.appendingPathComponent("x.gguf")
        try Data("definitely not gguf".utf8).write(to: url)
        do {
            _ = try ModelLoader.loadNetwork(path: url.path)
            XCTFail("expected an error")
        } catch {
            XCTAssertTrue("\(error)".contains("x.gguf"), "\(error)")
        }
    }

    func testMissingPath() {
        XCTAssertThrowsError(try ModelLoader.load(path: "/nonexistent/model")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/model"))
        }
    }
}
