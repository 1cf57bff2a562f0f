import Foundation
import PersonaGeneration
import PersonaModels
import PersonaRuns

/// One (row, coefficient) setting of a sweep; coefficient 0 is the unsteered baseline (its row is 0).
public struct SweepCell: Codable, Hashable, Sendable, CustomStringConvertible {
    public var row: Int
    public var coef: Float
    public init(row: Int, coef: Float) { self.row = coef == 0 ? 0 : row; self.coef = coef }
    public static let baseline = SweepCell(row: 0, coef: 0)
    public var isBaseline: Bool { coef == 0 }
    public var description: String { isBaseline ? "baseline" : "row \(row) coef \(coef)" }
}

/// What a sweep was asked to do; stored in sweep-settings.json and checked on resume.
public struct SweepSettings: Codable, Equatable, Sendable {
    public var trait: String
    public var method: String
    public var model: String
    public var rows: [Int]
    public var coefs: [Float]
    public var questions: [String]
    public var maxTokens: Int
    public var temperature: Float
    public var seed: UInt64
    /// The row whose projection measures the effect (the vector's monitoring row).
    public var monitoringRow: Int

    public init(trait: String, method: String, model: String, rows: [Int], coefs: [Float], questions: [String],
                maxTokens: Int, temperature: Float, seed: UInt64, monitoringRow: Int) {
        self.trait = trait; self.method = method; self.model = model; self.rows = rows; self.coefs = coefs
        self.questions = questions; self.maxTokens = maxTokens; self.temperature = temperature; self.seed = seed
        self.monitoringRow = monitoringRow
    }

    /// Every cell: the baseline, then row-major (row, coef) for the non-zero coefficients.
    public var cells: [SweepCell] {
        [.baseline] + rows.flatMap { r in coefs.filter { $0 != 0 }.map { SweepCell(row: r, coef: $0) } }
    }
}

/// One answer of a sweep: a question under one cell.
public struct SweepSample: Codable, Sendable, Equatable {
    public var question: Int
    public var cell: SweepCell
    public var answer: String
    public var answerTokens: Int
    /// Mean projection of the answer's tokens on the trait at the monitoring row, (h . v)/||v||.
    public var projection: Double
    /// exp(mean negative log-likelihood) of the answer under the unsteered model (coherence proxy).
    public var perplexity: Double
    /// Share of the answer's token 3-grams that repeat an earlier one (coherence proxy: perplexity misses loops,
    /// which the unsteered model finds likely). nil in files written before it was recorded.
    public var repetition: Double?
    public var key: String { SweepSample.key(question: question, cell: cell) }
    public static func key(question: Int, cell: SweepCell) -> String { "q\(question)/r\(cell.row)/c\(cell.coef)" }
}

/// Per-cell means over the questions.
public struct SweepCellSummary: Codable, Sendable, Equatable {
    public var row: Int
    public var coef: Float
    public var n: Int
    public var trait: Double?
    public var coherence: Double?
    public var projection: Double
    public var perplexity: Double
    public var repetition: Double
    /// Change against the baseline of the measure the choice uses (judged trait score, else projection).
    public var effect: Double?
    /// Whether the cell passes the coherence bar (judged coherence, else the perplexity proxy).
    public var coherent: Bool
}

public struct SweepSummary: Codable, Sendable, Equatable {
    public var trait: String
    public var model: String
    public var judged: Bool
    /// What `effect` and `coherent` mean for this sweep (a judge's scores or the proxies).
    public var measure: String
    public var coherenceThreshold: Double?
    public var maxPerplexityRatio: Double?
    public var maxRepetition: Double?
    /// Answers the judge gave both scores for (nil without a judge). Under half of all answers, the sweep falls
    /// back to the proxies and `measure` says so.
    public var usableJudgments: Int?
    public var monitoringRow: Int
    public var baseline: SweepCellSummary
    public var cells: [SweepCellSummary]
    /// The largest positive effect among coherent cells with a positive coefficient; nil when none is coherent.
    public var chosen: SweepCellSummary?
    /// Every answer with its scores, so the file alone shows what each setting made the model say (the dashboard's
    /// sweep view opens it).
    public var answers: [SweepAnswer]
}

public struct SweepAnswer: Codable, Sendable, Equatable {
    public var question: Int
    public var questionText: String
    public var row: Int
    public var coef: Float
    public var answer: String
    public var trait: Double?
    public var coherence: Double?
    public var projection: Double
    public var perplexity: Double
}

/// A steering sweep in a folder: every eval question answered under every (row, coefficient), each question's
/// cells generated together as one batch (each sequence with its own steering), judged for trait and coherence
/// when a judge is given, summarised per cell. Written ahead (samples.jsonl, judgments.jsonl) like extraction,
/// so a rerun with the same settings resumes.
public final class SteeringSweep {
    public let folder: URL
    public let settings: SweepSettings
    public let definition: TraitDefinition
    let session: MonitorSession
    let traitName: String
    /// This process's part of a job array (the questions with index % count == index); `.whole` otherwise.
    public let shard: Shard
    private let samplesLog: AppendLog<SweepSample>
    private let judgmentsLog: AppendLog<JudgmentRecord>
    public private(set) var samples: [String: SweepSample] = [:]
    public private(set) var judgments: [String: JudgmentRecord] = [:]

    /// `traitName` is how the vector is named among the session's vectors (`trait` or `trait@method`).
    public init(folder: URL, settings: SweepSettings, definition: TraitDefinition, session: MonitorSession, traitName: String,
                shard: Shard = .whole) throws {
        self.folder = folder
        self.settings = settings
        self.definition = definition
        self.session = session
        self.traitName = traitName
        try RunFolder.open(folder, settingsFile: "sweep-settings.json", settings: settings,
                           mismatch: "a sweep with other settings (trait, model, rows, coefficients, questions or sampling)")
        self.shard = shard
        samplesLog = ShardedLogs.log(folder, "samples", shard)
        judgmentsLog = ShardedLogs.log(folder, "judgments", shard)
        for var s in try ShardedLogs.readAll(folder, "samples") as [SweepSample] {
            // Files from before repetition was recorded: measured on the answer re-tokenised.
            if s.repetition == nil { s.repetition = Self.repetition(session.loaded.tokenizer.tokenizer.encode(s.answer, addSpecialTokens: false)) }
            samples[s.key] = s
        }
        for j in try ShardedLogs.readAll(folder, "judgments") as [JudgmentRecord] { judgments[j.key] = j }
    }

    public var totalSamples: Int { settings.questions.count * settings.cells.count }
    /// The answers this process is to make (its shard's questions).
    public var ownSamples: Int { settings.questions.indices.filter(shard.owns).count * settings.cells.count }
    public var ownDone: Int { samples.values.filter { shard.owns($0.question) }.count }

    /// Generates every missing answer. A question's cells run as one batch of `batchSize` at most; each answer gets
    /// its own seed from (seed, question, cell index), so the split into batches does not change what is drawn.
    public func generate(batchSize: Int = 0, progress: ExtractionProgress? = nil, onTokens: ((Int) -> Void)? = nil) throws {
        let cells = settings.cells
        var done = 0
        for (q, question) in settings.questions.enumerated() where shard.owns(q) {
            let todo = cells.enumerated().filter { samples[SweepSample.key(question: q, cell: $0.element)] == nil }
            let size = batchSize > 0 ? batchSize : max(1, todo.count)
            for start in stride(from: 0, to: todo.count, by: size) {
                let group = Array(todo[start..<min(todo.count, start + size)])
                let requests = group.map { (k, cell) -> MonitorRequest in
                    var sampling = SamplingParameters()
                    sampling.temperature = settings.temperature
                    sampling.seed = settings.seed &+ UInt64(q) &* 1_000_003 &+ UInt64(k)
                    var r = MonitorRequest(prompt: question, options: GenerationOptions(maxTokens: settings.maxTokens, sampling: sampling))
                    r.traits = [traitName]
                    r.layers = .rows([settings.monitoringRow])
                    if !cell.isBaseline { r.steering = [SteeringSpec(trait: traitName, coef: cell.coef, row: cell.row)] }
                    return r
                }
                // Perplexity needs a forward pass of its own, so it is computed after the batch, not in its callbacks
                // (they run while the batch holds the model).
                let docs = try session.run(batch: requests)
                for (i, doc) in docs.enumerated() {
                    let cell = group[i].element
                    let scores = doc.traitScores[traitName] ?? doc.traitScores.values.first ?? []
                    let answerIds = doc.tokenIds ?? []
                    let sample = SweepSample(question: q, cell: cell, answer: doc.response, answerTokens: answerIds.count,
                                             projection: scores.isEmpty ? 0 : scores.reduce(0, +) / Double(scores.count),
                                             perplexity: try perplexity(prompt: doc.promptTokenIds ?? [], answer: answerIds),
                                             repetition: Self.repetition(answerIds))
                    try samplesLog.append(sample)
                    samples[sample.key] = sample
                    done += 1
                    onTokens?(answerIds.count)
                    progress?(done, ownSamples, "answers")
                }
            }
        }
    }

    /// exp(mean NLL) of `answer` after `prompt` under the model without steering; 1 for an empty answer.
    func perplexity(prompt: [Int], answer: [Int]) throws -> Double {
        guard !answer.isEmpty, !prompt.isEmpty else { return 1 }
        let model = session.loaded.model
        let tokens = prompt + answer
        let V = session.loaded.config.vocabSize
        let cache = model.makeCache(capacity: tokens.count)
        return try model.forward(batch: [BatchSequence(tokens: tokens, cache: cache, hooks: HookSet())], logits: .all) { logits in
            var nll = 0.0
            for (j, id) in answer.enumerated() {
                let row = logits.baseAddress! + (prompt.count - 1 + j) * V
                var m = -Float.infinity
                for v in 0..<V { m = max(m, row[v]) }
                var z = 0.0
                for v in 0..<V { z += Foundation.exp(Double(row[v] - m)) }
                nll += (Double(m) + Foundation.log(z)) - Double(row[id])
            }
            return Foundation.exp(nll / Double(answer.count))
        }
    }

    /// 1 - distinct token 3-grams / all token 3-grams; 0 below 4 tokens.
    public static func repetition(_ ids: [Int]) -> Double {
        guard ids.count >= 4 else { return 0 }
        var seen = Set<[Int]>()
        let grams = ids.count - 2
        for i in 0..<grams { seen.insert(Array(ids[i..<(i + 3)])) }
        return 1 - Double(seen.count) / Double(grams)
    }

    /// Scores every answer without a judgment with the trait's own judge prompt and the coherence prompt.
    public func judge(with judge: any Judge, progress: ExtractionProgress? = nil, inFlight: Int = 16) async throws {
        let coherencePrompt = definition.coherencePrompt ?? JudgePrompt.coherence
        try await JudgingQueue.run(unjudged, inFlight: inFlight, progress: progress, job: { s in
            let question = settings.questions[s.question]
            let tp = try JudgePrompt.fill(definition.evalPrompt, question: question, answer: s.answer)
            let cp = try JudgePrompt.fill(coherencePrompt, question: question, answer: s.answer)
            return {
                let (t, c) = try await JudgingQueue.traitAndCoherence(judge, traitPrompt: tp, coherencePrompt: cp)
                return JudgmentRecord(key: s.key, trait: t, coherence: c, judge: judge.name)
            }
        }, record: { j in
            try judgmentsLog.append(j)
            judgments[j.key] = j
        })
    }

    /// This process's answers that have no judgment yet, in key order.
    public var unjudged: [SweepSample] {
        samples.values.filter { judgments[$0.key] == nil && shard.owns($0.question) }.sorted { $0.key < $1.key }
    }

    /// Per-cell means and the choice. With judgments: effect = mean trait score - the baseline's, coherent = mean
    /// coherence >= `coherenceThreshold`. Without: effect = mean projection - the baseline's (at the monitoring
    /// row), coherent = mean perplexity <= `maxPerplexityRatio` x the baseline's (a proxy).
    public func summary(coherenceThreshold: Double = 70, maxPerplexityRatio: Double = 2, maxRepetition: Double = 0.3) -> SweepSummary {
        let usable = judgments.isEmpty ? nil : Optional(samples.keys.filter { judgments[$0]?.trait != nil && judgments[$0]?.coherence != nil }.count)
        let judged = (usable ?? 0) > 0 && 2 * (usable ?? 0) >= samples.count
        func summarise(_ cell: SweepCell) -> SweepCellSummary {
            let xs = settings.questions.indices.compactMap { samples[SweepSample.key(question: $0, cell: cell)] }
            func mean(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.reduce(0, +) / Double(v.count) }
            let js = xs.compactMap { judgments[$0.key] }
            return SweepCellSummary(row: cell.row, coef: cell.coef, n: xs.count,
                                    trait: mean(js.compactMap(\.trait)), coherence: mean(js.compactMap(\.coherence)),
                                    projection: mean(xs.map(\.projection)) ?? .nan, perplexity: mean(xs.map(\.perplexity)) ?? .nan,
                                    repetition: mean(xs.map { $0.repetition ?? 0 }) ?? .nan, effect: nil, coherent: false)
        }
        let unsteered = summarise(.baseline)
        var base = unsteered
        var cells = settings.cells.dropFirst().map(summarise)
        func finish(_ c: inout SweepCellSummary) {
            let base = unsteered
            if judged {
                c.effect = c.trait.flatMap { t in base.trait.map { t - $0 } }
                c.coherent = (c.coherence ?? -1) >= coherenceThreshold
            } else {
                c.effect = c.projection - base.projection
                c.coherent = c.perplexity <= maxPerplexityRatio * base.perplexity && c.repetition <= maxRepetition
            }
        }
        finish(&base)
        for i in cells.indices { finish(&cells[i]) }
        let chosen = cells.filter { $0.coef > 0 && $0.coherent && ($0.effect ?? 0) > 0 }
            .max { ($0.effect ?? 0, -$0.coef) < ($1.effect ?? 0, -$1.coef) }
        return SweepSummary(trait: settings.trait, model: settings.model, judged: judged,
                            measure: judged ? "judge: trait score 0-100 minus the baseline's; coherence >= threshold"
                                : (usable.map { "proxy (the judge scored only \($0) of \(samples.count) answers): " } ?? "proxy (no judge): ")
                                    + "projection at the monitoring row minus the baseline's; coherent while perplexity under the unsteered model <= ratio x the baseline's and repeated token 3-grams <= the limit",
                            coherenceThreshold: judged ? coherenceThreshold : nil,
                            maxPerplexityRatio: judged ? nil : maxPerplexityRatio,
                            maxRepetition: judged ? nil : maxRepetition, usableJudgments: usable,
                            monitoringRow: settings.monitoringRow, baseline: base, cells: cells, chosen: chosen,
                            answers: samples.values.sorted { ($0.question, $0.cell.row, $0.cell.coef) < ($1.question, $1.cell.row, $1.cell.coef) }.map {
                                SweepAnswer(question: $0.question, questionText: settings.questions[$0.question], row: $0.cell.row,
                                            coef: $0.cell.coef, answer: $0.answer, trait: judgments[$0.key]?.trait,
                                            coherence: judgments[$0.key]?.coherence, projection: $0.projection, perplexity: $0.perplexity)
                            })
    }
}
