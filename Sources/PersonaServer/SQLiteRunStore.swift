import Foundation
import GRDB
import PersonaRuns

/// Runs in a SQLite file (WAL mode, via GRDB). A run is written in one transaction when it is finished,
/// so a crash mid-generation loses at most that run.
///
/// Tables: `runs(id, created, prompt, model, response, json, num_tokens, seq)` holds the whole document as
/// JSON; `run_traits(run_id, trait, max_score)` indexes the per-trait maximum for search.
public final class SQLiteRunStore: RunStore {
    private let pool: DatabasePool

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws {
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(5)
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw RunError("run store \(path): cannot open (\(error))")
        }
        try SQLiteRunStore.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE runs (
                    id TEXT PRIMARY KEY NOT NULL,
                    created TEXT NOT NULL,
                    prompt TEXT NOT NULL,
                    model TEXT,
                    response TEXT NOT NULL,
                    json BLOB NOT NULL,
                    num_tokens INTEGER NOT NULL,
                    seq INTEGER NOT NULL
                );
                CREATE INDEX runs_created ON runs(created, seq);
                CREATE TABLE run_traits (
                    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    trait TEXT NOT NULL,
                    max_score REAL,
                    PRIMARY KEY (run_id, trait)
                );
                CREATE INDEX run_traits_trait ON run_traits(trait, max_score);
                """)
        }
        return m
    }

    /// The journal mode in use ("wal" expected).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    public func save(_ list: [RunDocument]) async throws {
        for r in list { try r.validate() }
        let encoded = try list.map { try $0.jsonData(sortedKeys: true, pretty: false, writeProjections: false) }
        let now = RunDocument.timestamp()
        try await pool.write { db in
            var seq = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM runs") ?? 0
            for (r, json) in zip(list, encoded) {
                seq += 1
                try db.execute(sql: "DELETE FROM run_traits WHERE run_id = ?", arguments: [r.id])
                try db.execute(sql: "DELETE FROM runs WHERE id = ?", arguments: [r.id])
                try db.execute(sql: """
                    INSERT INTO runs (id, created, prompt, model, response, json, num_tokens, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [r.id, r.created ?? now, r.prompt, r.model?.id, r.response, json, r.tokens.count, seq])
                let maxima = RunSummary.maxScores(r)
                for t in r.traitNames {
                    try db.execute(sql: "INSERT INTO run_traits (run_id, trait, max_score) VALUES (?, ?, ?)", arguments: [r.id, t, maxima[t]])
                }
            }
        }
    }

    public func run(id: String) async throws -> RunDocument? {
        let data = try await pool.read { db in try Data.fetchOne(db, sql: "SELECT json FROM runs WHERE id = ?", arguments: [id]) }
        guard let data else { return nil }
        do { return try JSONDecoder().decode(RunDocument.self, from: data) } catch {
            throw RunError("run store: run \(id) is unreadable (\(error))")
        }
    }

    public func search(_ q: RunQuery) async throws -> RunPage {
        var conds: [String] = []
        var args: [(any DatabaseValueConvertible)?] = []
        if let text = q.text, !text.isEmpty {
            let pattern = "%" + SQLiteRunStore.escapeLike(text) + "%"
            conds.append("(r.prompt LIKE ? ESCAPE '\\' OR r.response LIKE ? ESCAPE '\\')")
            args.append(pattern); args.append(pattern)
        }
        switch (q.trait, q.minScore) {
        case let (t?, m?):
            conds.append("EXISTS (SELECT 1 FROM run_traits t WHERE t.run_id = r.id AND t.trait = ? AND t.max_score >= ?)")
            args.append(t); args.append(m)
        case let (t?, nil):
            conds.append("EXISTS (SELECT 1 FROM run_traits t WHERE t.run_id = r.id AND t.trait = ?)")
            args.append(t)
        case let (nil, m?):
            conds.append("EXISTS (SELECT 1 FROM run_traits t WHERE t.run_id = r.id AND t.max_score >= ?)")
            args.append(m)
        case (nil, nil):
            break
        }
        let whereSQL = conds.isEmpty ? "" : "WHERE " + conds.joined(separator: " AND ")
        let filterArgs = StatementArguments(args)
        let limit = max(0, q.limit), offset = max(0, q.offset)
        return try await pool.read { db in
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs r \(whereSQL)", arguments: filterArgs) ?? 0
            let rows = try Row.fetchAll(db, sql: """
                SELECT r.id, r.created, r.prompt, r.model, r.num_tokens FROM runs r \(whereSQL)
                ORDER BY r.created DESC, r.seq DESC LIMIT ? OFFSET ?
                """, arguments: filterArgs + [limit, offset])
            var summaries: [RunSummary] = []
            for row in rows {
                let id: String = row["id"]
                var maxScores: [String: Double] = [:]
                var traits: [String] = []
                for t in try Row.fetchAll(db, sql: "SELECT trait, max_score FROM run_traits WHERE run_id = ? ORDER BY trait", arguments: [id]) {
                    let name: String = t["trait"]
                    traits.append(name)
                    if let m: Double = t["max_score"] { maxScores[name] = m }
                }
                summaries.append(RunSummary(id: id, created: row["created"], prompt: row["prompt"], model: row["model"],
                                            traits: traits, numTokens: row["num_tokens"], maxScores: maxScores))
            }
            return RunPage(runs: summaries, total: total, limit: limit, offset: offset)
        }
    }

    public func delete(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM runs WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func count() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs") ?? 0 }
    }

    /// Escapes LIKE wildcards so user text matches literally. Per scalar: "%" with a combining mark after it is one
    /// Character, not "%", but SQLite still reads a wildcard.
    static func escapeLike(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for c in s.unicodeScalars {
            if c == "\\" || c == "%" || c == "_" { out.append("\\") }
            out.append(c)
        }
        return String(out)
    }
}
