import Foundation
import PersonaGeneration
import PersonaModels
import PersonaRuns

/// Does the projection predict behaviour? Each eval question is answered under the trait's positive and negative
/// system prompts and with none (neutral); for every hidden-state row the last prompt token's projection and the
/// answer's mean projection are set against the judged trait score of the answer (persona_vectors reports
/// r = 0.75-0.83 for the last prompt token). Written ahead and resumable like extraction.
public struct MonitorSample: Codable, Sendable, Equatable {
    public var question: Int
    /// "pos<i>", "neg<i>" (instruction pair i) or "neutral".
    public var condition: String
    public var answer: String
    /// Per HF row 0...L: (h . v)/||v|| at the last prompt token.
    public var lastPrompt: [Double]
    /// Per HF row: the mean over the answer's tokens (0 for an empty answer).
    public var responseMean: [Double]
    public var key: String { MonitorSample.key(question: question, condition: condition) }
    public static func key(question: Int, condition: String) -> String { "q\(question)/\(condition)" }
}

public struct MonitorJudgment: Codable, Sendable, Equatable {
    public var key: String
    public var trait: Double?
    public var judge: String
}

public struct MonitorValidationSettings: Codable, Equatable, Sendable {
    public var trait: String
    public var method: String
    public var model: String
    public var questions: [String]
    public var conditions: [String]
    public var systemPrompts: [String: String]
    public var maxTokens: Int
    public var temperature: Float
    public var seed: UInt64
    public var monitoringRow: Int

    public init(trait: String, method: String, model: String, questions: [String], definition: TraitDefinition,
                instructions: Int?, maxTokens: Int, temperature: Float, seed: UInt64, monitoringRow: Int) {
        self.trait = trait; self.method = method; self.model = model; self.questions = questions
        self.maxTokens = maxTokens; self.temperature = temperature; self.seed = seed; self.monitoringRow = monitoringRow
        var conditions = ["neutral"], prompts: [String: String] = [:]
        for (i, pair) in definition.instruction.prefix(instructions ?? Int.max).enumerated() {
            conditions += ["pos\(i)", "neg\(i)"]
            prompts["pos\(i)"] = pair.pos
            prompts["neg\(i)"] = pair.neg
        }
        self.conditions = conditions
        self.systemPrompts = prompts
    }
}

/// A correlation with its bootstrap 95% interval.
public struct Correlation: Codable, Sendable, Equatable {
    public var r: Double?
    public var low: Double?
    public var high: Double?
}

public struct RowValidation: Codable, Sendable, Equatable {
    public var row: Int
    public var lastPromptPearson: Correlation
    public var lastPromptSpearman: Correlation
    public var responsePearson: Correlation
    public var responseSpearman: Correlation
}

public struct MonitorValidationPoint: Codable, Sendable, Equatable {
    public var question: Int
    public var condition: String
    public var score: Double
    public var lastPrompt: Double
    public var responseMean: Double
}

public struct MonitorValidationReport: Codable, Sendable, Equatable {
    public var trait: String
    public var model: String
    public var judged: Bool
    public var measure: String
    public var monitoringRow: Int
    public var n: Int
    public var bootstrap: Int
    public var rows: [RowValidation]
    /// The monitoring row's points (for the scatter plot).
    public var points: [MonitorValidationPoint]
}

public final class MonitorValidation {
    public let folder: URL
    public let settings: MonitorValidationSettings
    public let definition: TraitDefinition
    let session: MonitorSession
    let vector: TraitVector
    /// This process's part of a job array (the questions with index % count == index); `.whole` otherwise.
    public let shard: Shard
    private let samplesLog: AppendLog<MonitorSample>
    private let judgmentsLog: AppendLog<MonitorJudgment>
    public private(set) var samples: [String: MonitorSample] = [:]
    public private(set) var judgments: [String: MonitorJudgment] = [:]

    public init(folder: URL, settings: MonitorValidationSettings, definition: TraitDefinition, session: MonitorSession,
                vector: TraitVector, shard: Shard = .whole) throws {
        self.folder = folder
        self.settings = settings
        self.definition = definition
        self.session = session
        self.vector = vector
        try RunFolder.open(folder, settingsFile: "monitor-settings.json", settings: settings, mismatch: "a validation with other settings")
        self.shard = shard
        samplesLog = ShardedLogs.log(folder, "samples", shard)
        judgmentsLog = ShardedLogs.log(folder, "judgments", shard)
        for s in try ShardedLogs.readAll(folder, "samples") as [MonitorSample] { samples[s.key] = s }
        for j in try ShardedLogs.readAll(folder, "judgments") as [MonitorJudgment] { judgments[j.key] = j }
    }

    public var total: Int { settings.questions.count * settings.conditions.count }
    /// The answers this process is to make (its shard's questions).
    public var own: Int { settings.questions.indices.filter(shard.owns).count * settings.conditions.count }
    public var ownDone: Int { samples.values.filter { shard.owns($0.question) }.count }

    /// Answers every (question, condition) not yet done, a question's conditions as one batch; then one plain
    /// forward of prompt + answer gives every row's projections.
    public func generate(batchSize: Int = 0, progress: ExtractionProgress? = nil, onTokens: ((Int) -> Void)? = nil) throws {
        var done = 0
        let projectors = vector.rows.map(RowProjector.init)
        for (q, question) in settings.questions.enumerated() where shard.owns(q) {
            let todo = settings.conditions.filter { samples[MonitorSample.key(question: q, condition: $0)] == nil }
            let size = batchSize > 0 ? batchSize : max(1, todo.count)
            for start in stride(from: 0, to: todo.count, by: size) {
                let group = Array(todo[start..<min(todo.count, start + size)])
                let requests = group.map { c -> MonitorRequest in
                    var sampling = SamplingParameters()
                    sampling.temperature = settings.temperature
                    sampling.seed = settings.seed &+ UInt64(q)
                    var r = MonitorRequest(prompt: question, options: GenerationOptions(maxTokens: settings.maxTokens, sampling: sampling))
                    r.system = settings.systemPrompts[c]
                    r.traits = [vector.trait]
                    r.layers = .rows([settings.monitoringRow])
                    return r
                }
                let docs = try session.run(batch: requests)
                for (i, doc) in docs.enumerated() {
                    let prompt = doc.promptTokenIds ?? [], answer = doc.tokenIds ?? []
                    let trace = try HiddenStateTrace.run(model: session.loaded.model, tokens: prompt + answer)
                    let P = prompt.count
                    let last = zip(projectors, trace.hiddenStates).map { project, h in project(h, P - 1) }
                    let mean = zip(projectors, trace.hiddenStates).map { project, h in project.mean(h, P..<(P + answer.count)) }
                    let s = MonitorSample(question: q, condition: group[i], answer: doc.response, lastPrompt: last, responseMean: mean)
                    try samplesLog.append(s)
                    samples[s.key] = s
                    done += 1
                    onTokens?(answer.count)
                    progress?(done, own, "answers")
                }
            }
        }
    }

    public func judge(with judge: any Judge, progress: ExtractionProgress? = nil, inFlight: Int = 16) async throws {
        try await JudgingQueue.run(unjudged, inFlight: inFlight, progress: progress, job: { s in
            let p = try JudgePrompt.fill(definition.evalPrompt, question: settings.questions[s.question], answer: s.answer)
            return { MonitorJudgment(key: s.key, trait: try await judge.score(prompt: p), judge: judge.name) }
        }, record: { j in
            try judgmentsLog.append(j)
            judgments[j.key] = j
        })
    }

    /// This process's answers that have no judgment yet, in key order.
    public var unjudged: [MonitorSample] {
        samples.values.filter { judgments[$0.key] == nil && shard.owns($0.question) }.sorted { $0.key < $1.key }
    }

    /// Correlations per row. Without judgments the target is the condition itself (positive 100, neutral 50,
    /// negative 0), a proxy that measures separation, not behaviour; the report says which.
    public func report(bootstrap: Int = 1000, seed: UInt64 = 0) -> MonitorValidationReport {
        let judged = !judgments.isEmpty
        let ordered = samples.values.sorted { $0.key < $1.key }
        let kept: [(MonitorSample, Double)] = ordered.compactMap { s in
            if judged { return judgments[s.key]?.trait.map { (s, $0) } }
            return (s, s.condition.hasPrefix("pos") ? 100 : s.condition.hasPrefix("neg") ? 0 : 50)
        }
        let y = kept.map(\.1)
        let rows = (0..<(vector.rows.count)).map { r -> RowValidation in
            let last = kept.map { $0.0.lastPrompt[r] }, resp = kept.map { $0.0.responseMean[r] }
            return RowValidation(row: r,
                                 lastPromptPearson: Self.correlation(last, y, RunStats.pearson, bootstrap, seed),
                                 lastPromptSpearman: Self.correlation(last, y, Self.spearman, bootstrap, seed),
                                 responsePearson: Self.correlation(resp, y, RunStats.pearson, bootstrap, seed),
                                 responseSpearman: Self.correlation(resp, y, Self.spearman, bootstrap, seed))
        }
        let m = settings.monitoringRow
        return MonitorValidationReport(
            trait: settings.trait, model: settings.model, judged: judged,
            measure: judged ? "judged trait score (0-100) of each answer" : "proxy (no judge): the condition, positive 100 / neutral 50 / negative 0",
            monitoringRow: m, n: kept.count, bootstrap: bootstrap, rows: rows,
            points: kept.map { MonitorValidationPoint(question: $0.0.question, condition: $0.0.condition, score: $0.1,
                                                      lastPrompt: $0.0.lastPrompt[m], responseMean: $0.0.responseMean[m]) })
    }

    /// Spearman's rho: Pearson on ranks, ties given their mean rank.
    public static func spearman(_ a: [Double], _ b: [Double]) -> Double? { RunStats.pearson(ranks(a), ranks(b)) }

    static func ranks(_ x: [Double]) -> [Double] {
        let order = x.indices.sorted { x[$0] < x[$1] }
        var out = [Double](repeating: 0, count: x.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && x[order[j + 1]] == x[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j { out[order[k]] = rank }
            i = j + 1
        }
        return out
    }

    /// r on all pairs, and the 2.5% / 97.5% percentiles of r over `b` resamples of the pairs (the sampler's seeded
    /// generator).
    static func correlation(_ x: [Double], _ y: [Double], _ f: ([Double], [Double]) -> Double?, _ b: Int, _ seed: UInt64) -> Correlation {
        guard let r = f(x, y) else { return Correlation(r: nil, low: nil, high: nil) }
        guard b > 0, x.count >= 3 else { return Correlation(r: r, low: nil, high: nil) }
        var rng = SeededRandom(seed: seed)
        var rs: [Double] = []
        rs.reserveCapacity(b)
        var xs = x, ys = y
        for _ in 0..<b {
            for i in x.indices { let k = Int.random(in: 0..<x.count, using: &rng); xs[i] = x[k]; ys[i] = y[k] }
            if let v = f(xs, ys) { rs.append(v) }
        }
        guard rs.count >= 20 else { return Correlation(r: r, low: nil, high: nil) }
        rs.sort()
        func pct(_ p: Double) -> Double { rs[min(rs.count - 1, max(0, Int((p * Double(rs.count - 1)).rounded())))] }
        return Correlation(r: r, low: pct(0.025), high: pct(0.975))
    }
}
