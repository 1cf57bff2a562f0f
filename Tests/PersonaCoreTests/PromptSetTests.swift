import Foundation
import XCTest
@testable import PersonaCore

/// `monitor --prompts` files: each format a user can hand over, and the errors for what cannot be read.
final class PromptSetTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("promptset-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func file(_ name: String, _ text: String) throws -> URL {
        let u = dir.appendingPathComponent(name)
        try text.write(to: u, atomically: true, encoding: .utf8)
        return u
    }

    func testFormats() throws {
        // the per-token project's shapes: a list, trait -> list, trait -> {category -> list}, objects with a text key
        let json = try PromptSet.load(file("set.json", #"{"refusal": {"high": ["How do I pick a lock?", {"prompt": "Make a weapon"}], "low": ["Bake bread"]}, "verbosity": ["Hi"]}"#))
        XCTAssertEqual(json, [PromptItem(prompt: "How do I pick a lock?", tags: ["refusal", "high"]), PromptItem(prompt: "Make a weapon", tags: ["refusal", "high"]),
                              PromptItem(prompt: "Bake bread", tags: ["refusal", "low"]), PromptItem(prompt: "Hi", tags: ["verbosity"])])
        XCTAssertEqual(try PromptSet.load(file("list.json", #"["a", {"question": "b"}]"#)).map(\.prompt), ["a", "b"])
        XCTAssertEqual(try PromptSet.load(file("set.jsonl", "\"a\"\n\n{\"text\": \"b, with a comma\"}\n")).map(\.prompt), ["a", "b, with a comma"])
        XCTAssertEqual(try PromptSet.load(file("set.csv", "id,prompt\n1,\"Say \"\"hi\"\", then stop\"\n2,\n3,second\n")).map(\.prompt),
                       ["Say \"hi\", then stop", "second"])
        // JSON lines written on Windows: "\r\n" ends each line (one Character in Swift, never equal to "\n")
        XCTAssertEqual(try PromptSet.load(file("crlf.jsonl", "{\"prompt\": \"a\"}\r\n\r\n\"b\\r\"\r\n")).map(\.prompt), ["a", "b\r"])
        // a raw U+2028 inside a JSON string is not a line break (Python's file iteration agrees)
        XCTAssertEqual(try PromptSet.load(file("ls.jsonl", "\"a\u{2028}b\"\n")).map(\.prompt), ["a\u{2028}b"])
        // plain text: one prompt per non-blank line, CRLF and surrounding spaces dropped
        XCTAssertEqual(try PromptSet.load(file("set.txt", "What is 2+2?\r\n\n   \n  Tell me a story. \nlast")).map(\.prompt),
                       ["What is 2+2?", "Tell me a story.", "last"])
    }

    /// Extraction's CSVs (pos.csv, eval_*.csv) hold model answers: a field with "\r\n" or a quote before a combining
    /// mark (each one Swift Character) is quoted as RFC 4180 asks and reads back whole.
    func testCSVFieldsWithLineBreaksRoundTrip() {
        for field in ["line one\r\nline two", "a \"\u{301} b", "\r", "plain", "x,y"] {
            let row = [field, "next"].map(CSV.escape).joined(separator: ",")
            let back = CSV.parse(row + "\r\n")
            XCTAssertEqual(back.count, 1, field.debugDescription)
            XCTAssertTrue(back.first?.first?.unicodeScalars.elementsEqual(field.unicodeScalars) == true, "\(field.debugDescription): \(back)")
            XCTAssertEqual(back.first?.last, "next")
        }
        XCTAssertEqual(CSV.escape("say \"hi\""), "\"say \"\"hi\"\"\"")
    }

    func testErrorsNameTheFileAndLine() throws {
        func message(_ name: String, _ text: String) throws -> String {
            let u = try file(name, text)
            do { _ = try PromptSet.load(u); return "no error" } catch { return "\(error)" }
        }
        var m = try message("p.json", "What is 2+2?\nTell me a story.")
        XCTAssertTrue(m.contains("p.json: not valid JSON") && m.contains(".txt"), m)
        m = try message("p.jsonl", "\"ok\"\n{broken\n")
        XCTAssertTrue(m.contains("p.jsonl: line 2 is not valid JSON"), m)
        m = try message("p.jsonl", "\"ok\"\r\n\r\n{broken\r\n")   // the file's own line number, blank lines counted
        XCTAssertTrue(m.contains("p.jsonl: line 3 is not valid JSON"), m)
        m = try message("p.csv", "id,answer\n1,x\n")
        XCTAssertTrue(m.contains("p.csv: no prompt, question or text column"), m)
        m = try message("p.txt", "\n  \n")
        XCTAssertTrue(m.contains("p.txt: no prompts found"), m)
        m = try message("p.json", "[1, 2]")
        XCTAssertTrue(m.contains("unexpected value"), m)
        let missing = dir.appendingPathComponent("none.txt")
        // `persona screen` data, written on Windows
        let screen = try ScreenSample.load(file("data.jsonl", "{\"prompt\": \"Hi\", \"response\": \"Hello.\"}\r\n{\"messages\": [{\"role\": \"user\", \"content\": \"Q\"}, {\"role\": \"assistant\", \"content\": \"A\"}]}\r\n"))
        XCTAssertEqual(screen.map(\.response), ["Hello.", "A"])
        XCTAssertEqual(screen.first?.line, "{\"prompt\": \"Hi\", \"response\": \"Hello.\"}")
        // an empty response has no mean projection; it used to be screened as 0
        XCTAssertThrowsError(try ScreenSample.load(file("empty.jsonl", "{\"prompt\": \"Hi\", \"response\": \"x\"}\n\n{\"prompt\": \"Q\", \"response\": \"\"}\n"))) {
            XCTAssertTrue("\($0)".hasSuffix("empty.jsonl: line 3: the response is empty (there is nothing to project)"), "\($0)")
        }
        XCTAssertThrowsError(try PromptSet.load(missing)) { XCTAssertTrue("\($0)".contains("none.txt: cannot read prompt set"), "\($0)") }
    }
}
