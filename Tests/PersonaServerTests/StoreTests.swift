import Foundation
import PersonaRuns
import XCTest
@testable import PersonaServer

/// Both run stores behave the same; the SQLite one persists, uses WAL and survives reopening.
final class StoreTests: XCTestCase {
    var dir: URL!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func run(_ id: String, _ prompt: String, created: String, happy: [Double], response: String = "resp") -> RunDocument {
        RunDocument(id: id, created: created, prompt: prompt, response: response, tokens: happy.map { _ in "t" },
                    traitScores: ["happy": happy, "sad": happy.map { -$0 }])
    }

    var samples: [RunDocument] {
        [run("a", "happy dog", created: "2026-01-01T00:00:00Z", happy: [0, 2]),
         run("b", "50% off_sale", created: "2026-01-02T00:00:00Z", happy: [1, 0.5]),
         run("c", "Another Dog", created: "2026-01-03T00:00:00Z", happy: [3], response: "a cat story"),
         run("d", "empty", created: "2026-01-04T00:00:00Z", happy: [])]
    }

    func queries() -> [RunQuery] {
        [RunQuery(), RunQuery(text: "dog"), RunQuery(text: "50%"), RunQuery(text: "%"), RunQuery(text: "_"), RunQuery(text: "CAT"),
         RunQuery(trait: "happy", minScore: 1.5), RunQuery(minScore: 0.9), RunQuery(trait: "sad"), RunQuery(trait: "sad", minScore: 0),
         RunQuery(trait: "nope"), RunQuery(limit: 2), RunQuery(limit: 2, offset: 2), RunQuery(limit: 2, offset: 10)]
    }

    func testSQLiteMatchesInMemoryAndPersists() async throws {
        let path = dir.appendingPathComponent("runs.sqlite").path
        let sql = try SQLiteRunStore(path: path)
        XCTAssertEqual(try sql.journalMode(), "wal")
        let mem = InMemoryRunStore()
        try await sql.save(samples)
        try await mem.save(samples)
        let expected: [[String]] = [["d", "c", "b", "a"], ["c", "a"], ["b"], ["b"], ["b"], ["c"], ["c", "a"], ["c", "b", "a"],
                                    ["d", "c", "b", "a"], ["a"], [], ["d", "c"], ["b", "a"], []]
        for (q, want) in zip(queries(), expected) {
            let s = try await sql.search(q), m = try await mem.search(q)
            XCTAssertEqual(s.runs.map(\.id), want, "\(q)")
            XCTAssertEqual(m.runs.map(\.id), want, "\(q)")
            XCTAssertEqual(s, m, "\(q)")
        }
        let total = try await sql.search(RunQuery(limit: 2)).total
        XCTAssertEqual(total, 4)
        // "_" with a combining mark after it is one Swift Character, still a LIKE wildcard unless escaped
        let accented = run("e", "cafe\u{301}", created: "2026-01-05T00:00:00Z", happy: [1])
        try await sql.save([accented])
        try await mem.save([accented])
        for q in [RunQuery(text: "_\u{301}"), RunQuery(text: "%\u{301}")] {
            let s = try await sql.search(q), m = try await mem.search(q)
            XCTAssertEqual(s.runs.map(\.id), [], "\(q)")
            XCTAssertEqual(m.runs.map(\.id), [], "\(q)")
        }
        _ = try await sql.delete(id: "e")
        _ = await mem.delete(id: "e")
        let summary = try await sql.search(RunQuery(text: "happy")).runs.first
        XCTAssertEqual(summary?.maxScores, ["happy": 2, "sad": 0])
        XCTAssertEqual(summary?.traits, ["happy", "sad"])
        let got = try await sql.run(id: "c")
        XCTAssertEqual(got, samples[2])

        // Replacing a run keeps one copy; deleting removes its trait rows too.
        var changed = samples[0]
        changed.prompt = "changed"
        try await sql.save(changed)
        let count1 = try await sql.count()
        XCTAssertEqual(count1, 4)
        let deleted = try await sql.delete(id: "a")
        XCTAssertTrue(deleted)
        let again = try await sql.delete(id: "a")
        XCTAssertFalse(again)
        let highHappy = try await sql.search(RunQuery(trait: "happy", minScore: 1.5)).runs.map(\.id)
        XCTAssertEqual(highHappy, ["c"])

        // Reopen: everything is still there.
        let reopened = try SQLiteRunStore(path: path)
        let count2 = try await reopened.count()
        XCTAssertEqual(count2, 3)
        let c = try await reopened.run(id: "c")
        XCTAssertEqual(c, samples[2])
    }

    func testInvalidRunsAreRejectedWhole() async throws {
        let sql = try SQLiteRunStore(path: dir.appendingPathComponent("r.sqlite").path)
        var bad = samples[1]
        bad.traitScores["happy"] = [1]
        do {
            try await sql.save([samples[0], bad])
            XCTFail("saved an invalid run")
        } catch let e as RunError {
            XCTAssertEqual(e.message, "trait_scores.happy has 1 values but tokens has 2")
        }
        let n = try await sql.count()
        XCTAssertEqual(n, 0, "nothing of the batch was written")
    }

    func testImportAndExportAll() async throws {
        let sql = try SQLiteRunStore(path: dir.appendingPathComponent("x.sqlite").path)
        let ids = try await sql.importFile(try requireShared("reference/trait-interp/pertoken_results/contaminated_results.json"))
        XCTAssertEqual(ids.count, 10)
        let again = try await sql.importFile(try requireShared("reference/trait-interp/pertoken_results/contaminated_results.json"))
        XCTAssertEqual(again, ids)
        let n = try await sql.count()
        XCTAssertEqual(n, 10, "re-importing the same file does not duplicate runs")
        let all = try RunImport.load(data: try await sql.exportAll(), source: "export")
        XCTAssertEqual(Set(all.map(\.id)), Set(ids))
    }

    func testUnopenablePathIsAClearError() {
        XCTAssertThrowsError(try SQLiteRunStore(path: "/proc/definitely/not/here.sqlite")) { e in
            XCTAssertTrue("\(e)".hasPrefix("run store /proc/definitely/not/here.sqlite: cannot open"), "\(e)")
        }
    }
}
