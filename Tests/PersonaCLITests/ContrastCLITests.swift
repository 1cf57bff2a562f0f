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

    func testVectorAndReport() throws {
        let model = try Repository.stories260K.path
        let out = dir.appendingPathComponent("happy.safetensors"), rep = dir.appendingPathComponent("happy.report.json")
        let r = try persona(["contrast", "--model", model, "--positive", try stories("happy", first: 24).path,
                             "--negative", try stories("sad", first: 24).path, "--trait", "happy", "--report", rep.path, "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let v = try XCTUnwrap(try VectorFiles.load(out).first)
        let rows = try report(rep)
        XCTAssertEqual(rows.count, v.rows.count)   // one per hidden-state row, 0...L
        XCTAssertTrue(r.stdout.contains("held-out texts: 6 positive, 6 negative"), r.stdout)
        let marked = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasSuffix("<- recommended") })
        XCTAssertEqual(Int(marked.split(separator: " ").first!), v.recommendedRow)
        for row in rows { XCTAssertNotNil(row["cohensD"] as? Double, "6 vs 6 held out: d is defined on every row") }
    }

    /// Two texts a side leave one held out: Cohen's d is undefined. It used to be written as NaN, which JSON
    /// cannot hold, so `--report` failed before the vector was saved; and the NaN stopped the row choice at row 1.
    func testOneHeldOutTextASide() throws {
        let model = try Repository.stories260K.path
        let out = dir.appendingPathComponent("thin.safetensors"), rep = dir.appendingPathComponent("thin.report.json")
        let r = try persona(["contrast", "--model", model, "--positive", try stories("happy", first: 2).path,
                             "--negative", try stories("sad", first: 2).path, "--trait", "happy", "--report", rep.path, "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Cohen's d needs 2 held-out texts a side"), r.stderr)
        XCTAssertTrue(r.stdout.contains("n/a"), r.stdout)
        let v = try XCTUnwrap(try VectorFiles.load(out).first)
        let rows = try report(rep)
        XCTAssertEqual(rows.count, v.rows.count)
        for row in rows { XCTAssertTrue(row["cohensD"] is NSNull, "\(row)") }
        let decoded = try JSONDecoder().decode([TextContrast.RowReport].self, from: Data(contentsOf: rep))
        XCTAssertTrue(decoded.allSatisfy { $0.cohensD.isNaN })
        XCTAssertEqual(v.recommendedRow, TextContrast.recommendedRow(decoded, numLayers: v.rows.count - 1))
        // --report without held-out texts is refused before anything runs
        let none = try persona(["contrast", "--model", model, "--positive", try stories("happy", first: 2).path,
                                "--negative", try stories("sad", first: 2).path, "--trait", "happy", "--holdout", "0", "--report", rep.path, "--out", out.path])
        XCTAssertEqual(none.status, 64)
        XCTAssertTrue(none.stderr.contains("--report needs held-out texts"), none.stderr)
    }
}
