import Foundation
import PersonaRuns

/// One line of the run list.
public struct RunSummary: Codable, Sendable, Equatable {
    public var id: String
    public var created: String
    public var prompt: String
    public var model: String?
    public var traits: [String]
    public var numTokens: Int
    /// Highest score of each trait over the response.
    public var maxScores: [String: Double]

    public init(id: String, created: String, prompt: String, model: String?, traits: [String], numTokens: Int, maxScores: [String: Double]) {
        self.id = id; self.created = created; self.prompt = prompt; self.model = model; self.traits = traits
        self.numTokens = numTokens; self.maxScores = maxScores
    }

    /// The summary of a run; `created` falls back to `storedAt` for runs that carry no time (imports).
    public init(_ run: RunDocument, storedAt: String) {
        self.init(id: run.id, created: run.created ?? storedAt, prompt: run.prompt, model: run.model?.id, traits: run.traitNames,
                  numTokens: run.tokens.count, maxScores: RunSummary.maxScores(run))
    }

    static func maxScores(_ run: RunDocument) -> [String: Double] {
        var out: [String: Double] = [:]
        for (t, xs) in run.traitScores { if let m = xs.max() { out[t] = m } }
        return out
    }

    enum CodingKeys: String, CodingKey {
        case id, created, prompt, model, traits
        case numTokens = "num_tokens", maxScores = "max_scores"
    }
}

/// A search over stored runs. All filters are optional and combine with AND.
public struct RunQuery: Sendable, Equatable {
    /// Substring of the prompt or the response (ASCII case-insensitive).
    public var text: String?
    /// Runs that scored this trait.
    public var trait: String?
    /// Runs whose maximum score (of `trait`, or of any trait) is at least this.
    public var minScore: Double?
    public var limit: Int
    public var offset: Int

    public init(text: String? = nil, trait: String? = nil, minScore: Double? = nil, limit: Int = 50, offset: Int = 0) {
        self.text = text; self.trait = trait; self.minScore = minScore; self.limit = limit; self.offset = offset
    }

    func matches(_ s: RunSummary, response: String) -> Bool {
        if let q = text, !q.isEmpty {
            let needle = q.lowercased()
            if !s.prompt.lowercased().contains(needle) && !response.lowercased().contains(needle) { return false }
        }
        if let t = trait {
            guard s.traits.contains(t) else { return false }
            if let m = minScore { guard let v = s.maxScores[t], v >= m else { return false } }
        } else if let m = minScore {
            guard s.maxScores.values.contains(where: { $0 >= m }) else { return false }
        }
        return true
    }
}

/// One page of search results, newest first.
public struct RunPage: Codable, Sendable, Equatable {
    public var runs: [RunSummary]
    /// Matches in all pages.
    public var total: Int
    public var limit: Int
    public var offset: Int
}

/// Where finished runs live. Each run is written whole in one transaction.
public protocol RunStore: Sendable {
    /// Stores runs (replacing any with the same id), all in one transaction.
    func save(_ runs: [RunDocument]) async throws
    func run(id: String) async throws -> RunDocument?
    func search(_ query: RunQuery) async throws -> RunPage
    /// Returns false when there was no such run.
    func delete(id: String) async throws -> Bool
    func count() async throws -> Int
}

extension RunStore {
    public func save(_ run: RunDocument) async throws { try await save([run]) }

    /// Imports a run file (ours or the per-token project's) and returns the ids stored.
    @discardableResult
    public func importFile(_ url: URL) async throws -> [String] {
        let runs = try RunImport.load(url: url)
        try await save(runs)
        return runs.map(\.id)
    }

    /// Every stored run as one JSON list (our format), newest first.
    public func exportAll() async throws -> Data {
        var runs: [RunDocument] = []
        var offset = 0
        while true {
            let page = try await search(RunQuery(limit: 200, offset: offset))
            for s in page.runs { if let r = try await run(id: s.id) { runs.append(r) } }
            offset += page.runs.count
            if page.runs.isEmpty || offset >= page.total { break }
        }
        return try RunDocument.jsonData(runs)
    }
}

/// Keeps runs in memory (tests, `--no-store`).
public actor InMemoryRunStore: RunStore {
    private var runs: [String: (run: RunDocument, summary: RunSummary, seq: Int)] = [:]
    private var seq = 0

    public init() {}

    public func save(_ list: [RunDocument]) throws {
        for r in list { try r.validate() }
        let now = RunDocument.timestamp()
        for r in list {
            seq += 1
            runs[r.id] = (r, RunSummary(r, storedAt: now), seq)
        }
    }

    public func run(id: String) -> RunDocument? { runs[id]?.run }

    public func search(_ q: RunQuery) -> RunPage {
        let hits = runs.values.filter { q.matches($0.summary, response: $0.run.response) }
            .sorted { ($0.summary.created, $0.seq) > ($1.summary.created, $1.seq) }
        let page = hits.dropFirst(max(0, q.offset)).prefix(max(0, q.limit)).map(\.summary)
        return RunPage(runs: Array(page), total: hits.count, limit: q.limit, offset: q.offset)
    }

    public func delete(id: String) -> Bool { runs.removeValue(forKey: id) != nil }

    public func count() -> Int { runs.count }
}
