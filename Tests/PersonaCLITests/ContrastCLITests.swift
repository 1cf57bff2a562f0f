import Foundation
import XCTest
import PersonaCore
@testable import PersonaTestSupport

/// `persona contrast` through the binary on stories260K: the vector, the printed layer report and its JSON agree,
/// and a report that is thin (one held-out text a side) still leaves the vector and a readable report.
final class ContrastCLITests: BinaryTestCase {
    override class var folderPrefix: String { "contrast" }

    func stories(_ name: String, first n: Int) throws -> URL {
        let text = try String(contentsOf: Repository.root.appendingPathComponent("examples/stories/\(name).txt"), encoding: .utf8)
        let url = dir.appendingPathComponent("\(name)-\(n).txt")
        try text.split(separator: "\n").filter { !$0.isEmpty }.prefix(n).joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func report(_ url: URL) throws -> [[String: Any]] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
    }

    /// `persona contrast` on the first n happy and sad stories, writing name.safetensors and name.report.json.
    func contrast(first n: Int, name: String, _ extra: [String] = []) throws -> (run: (status: Int32, stdout: String, stderr: String), out: URL, report: URL) {
        let out = dir.appendingPathComponent("\(name).safetensors"), rep = dir.appendingPathComponent("\(name).report.json")
        let r = try persona(["contrast", "--model", try Repository.stories260K.path, "--positive", try stories("happy", first: n).path,
                             "--negative", try stories("sad", first: n).path, "--trait", "happy", "--report", rep.path, "--out", out.path] + extra)
        return (r, out, rep)
    }

    func testVectorAndReport() throws {
        let (r, out, rep) = try contrast(first: 24, name: "happy")
        XCTAssertEqual(r.status, 0, r.stderr)
        let v = try XCTUnwrap(try VectorFiles.load(out).first)
        let rows = try report(rep)
        XCTAssertEqual(rows.count, v.rows.count)   // one per hidden-state row, 0...L
        XCTAssertTrue(r.stdout.contains("held-out texts: 6 positive, 6 negative"), r.stdout)
        let marked = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasSuffix("<- recommended") })
        XCTAssertEqual(Int(marked.split(separator: " ").first!), v.recommendedRow)
        for row in rows { XCTAssertNotNil(row["cohensD"] as? Double, "6 vs 6 held out: d is defined on every row") }
    }

    /// Two texts a side leave one held out: Cohen's d is undefined. JSONEncoder refused the NaN, so `--report`
    /// failed before the vector was saved; and the NaN stopped the row choice at row 1.
    func testOneHeldOutTextASide() throws {
        let (r, out, rep) = try contrast(first: 2, name: "thin")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Cohen's d needs 2 held-out texts a side"), r.stderr)
        XCTAssertTrue(r.stdout.contains("n/a"), r.stdout)
        let v = try XCTUnwrap(try VectorFiles.load(out).first)
        let rows = try report(rep)
        XCTAssertEqual(rows.count, v.rows.count)
        for row in rows { XCTAssertEqual(row["cohensD"] as? String, "nan", "\(row)") }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let decoded = try decoder.decode([TextContrast.RowReport].self, from: Data(contentsOf: rep))
        XCTAssertTrue(decoded.allSatisfy { $0.cohensD.isNaN })
        XCTAssertEqual(v.recommendedRow, TextContrast.recommendedRow(decoded, numLayers: v.rows.count - 1))
        // --report without held-out texts is refused before anything runs
        let none = try contrast(first: 2, name: "none", ["--holdout", "0"]).run
        XCTAssertEqual(none.status, 64)
        XCTAssertTrue(none.stderr.contains("--report needs held-out texts"), none.stderr)
        // a trait name is one path component, as a trait file's (vector folders name files after traits)
        let slash = try persona(["contrast", "--model", try Repository.stories260K.path, "--positive", try stories("happy", first: 2).path,
                                 "--negative", try stories("sad", first: 2).path, "--trait", "a/b", "--out", dir.appendingPathComponent("s.safetensors").path])
        XCTAssertEqual(slash.status, 64)
        XCTAssertTrue(slash.stderr.contains(#"--trait "a/b" must not hold /"#), slash.stderr)
    }
}
