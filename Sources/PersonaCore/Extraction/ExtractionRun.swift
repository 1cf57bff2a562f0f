import Foundation
import PersonaGeneration
import PersonaModels

/// Which part of the work a process does: units (question, instruction, sample) with index % count == index.
public struct Shard: Codable, Sendable, Hashable, CustomStringConvertible {
    public var index: Int
    public var count: Int
    public init(index: Int, count: Int) { self.index = index; self.count = count }
    public static let whole = Shard(index: 0, count: 1)

    /// Parses "i/N" (0-based i).
    public init(parsing s: String) throws {
        let parts = s.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw VectorError("--shard '\(s)': expected i/N with 0 <= i < N, e.g. 0/4")
        }
        index = i; count = n
    }
    public var description: String { "\(index)/\(count)" }
    /// The shard's folder name under a run folder's `shards/`.
    public var folderName: String { "\(index)-of-\(count)" }
    public func owns(_ unit: Int) -> Bool { unit % count == index }
}

/// A task's place in a job array, read from the scheduler's environment when no --shard is given.
public struct ArrayTask: Equatable, Sendable, CustomStringConvertible {
    public var index: Int
    public var count: Int
    /// The variables it came from, for the log.
    public var source: String
    public var description: String { "task \(index) of \(count) (\(source))" }

    /// Slurm job arrays (SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT, _MIN and _STEP) or Kubernetes Indexed
    /// Jobs (JOB_COMPLETION_INDEX with PERSONA_SHARD_COUNT, which the Job's manifest sets to its `completions`:
    /// Kubernetes does not pass the count); nil outside both.
    public static func fromEnvironment(_ env: [String: String]) throws -> ArrayTask? {
        func int(_ k: String) throws -> Int? {
            guard let v = env[k]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            guard let n = Int(v) else { throw VectorError("\(k)=\(v) is not an integer") }
            return n
        }
        if let id = try int("SLURM_ARRAY_TASK_ID") {
            guard let count = try int("SLURM_ARRAY_TASK_COUNT"), count >= 1 else {
                throw VectorError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (Slurm sets it since 20.11); pass --shard i/N")
            }
            let min = try int("SLURM_ARRAY_TASK_MIN") ?? 0, step = try int("SLURM_ARRAY_TASK_STEP") ?? 1
            let offset = id - min
            guard step >= 1, offset >= 0, offset % step == 0, offset / step < count else {
                throw VectorError("Slurm array task \(id) (min \(min), step \(step), \(count) tasks) is not part of a contiguous range: submit with --array=0-\(count - 1), or pass --shard i/N")
            }
            let job = env["SLURM_ARRAY_JOB_ID"].map { " \($0)" } ?? ""
            return ArrayTask(index: offset / step, count: count,
                             source: "Slurm array job\(job): SLURM_ARRAY_TASK_ID=\(id), SLURM_ARRAY_TASK_COUNT=\(count)")
        }
        if let index = try int("JOB_COMPLETION_INDEX") {
            guard let count = try int("PERSONA_SHARD_COUNT"), count >= 1 else {
                throw VectorError("JOB_COMPLETION_INDEX is set but PERSONA_SHARD_COUNT is not: set it to the Indexed Job's completions (examples/cluster/k8s-indexed-job.yaml), or pass --shard i/N")
            }
            guard (0..<count).contains(index) else {
                throw VectorError("JOB_COMPLETION_INDEX=\(index) is outside 0..<\(count) (PERSONA_SHARD_COUNT)")
            }
            return ArrayTask(index: index, count: count,
                             source: "Kubernetes Indexed Job: JOB_COMPLETION_INDEX=\(index), PERSONA_SHARD_COUNT=\(count)")
        }
        return nil
    }

    /// This task's work when `traits` traits share the array: consecutive blocks of count/traits tasks per trait,
    /// each block the shards of one trait (task i: trait i / K, shard i % K of K).
    public func split(traits: Int) throws -> (trait: Int, shard: Shard) {
        guard traits >= 1, count % traits == 0 else {
            throw VectorError("\(count) array tasks cannot be shared evenly by \(traits) traits: use a multiple of \(traits) tasks")
        }
        let k = count / traits
        return (index / k, Shard(index: index % k, count: k))
    }
}

/// Settings of an extraction run; stored in run.json and checked on resume.
public struct ExtractionOptions: Codable, Sendable, Equatable {
    public var samplesPerQuestion = 1
    /// Samples per (eval question, instruction) for the layer report.
    public var evalSamplesPerQuestion = 1
    public var maxTokens = 64
    public var threshold = 50.0
    public var coherenceThreshold = 50.0
    /// Use only the first N extraction / eval questions (nil = all).
    public var questionLimit: Int?
    public var evalQuestionLimit: Int?
    public var seed: UInt64 = 0
    public var shard = Shard.whole
    public init() {}
}

/// Which questions a row answers: the extraction set, or the held-out eval set of the layer report.
public enum ResponseSet: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case extract, eval
    public var description: String { rawValue }
}

/// Which system prompt a row was generated under: the trait's (positive) or its opposite (negative).
public enum Side: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case pos, neg
    public var description: String { rawValue }
}

/// One generated response. Token ids are kept so extraction forwards exactly what was generated
/// (prompt ids already hold BOS / the chat template; nothing is added again).
public struct ResponseRecord: Codable, Sendable, Equatable {
    public var set: ResponseSet
    public var side: Side
    public var questionIndex: Int
    public var instructionIndex: Int
    public var sample: Int
    public var question: String
    /// The prompt as the model saw it (decoded prompt ids, special tokens included).
    public var prompt: String
    public var answer: String
    public var promptIds: [Int]
    public var answerIds: [Int]
    public var finish: String

    enum CodingKeys: String, CodingKey {
        case set, side, sample, question, prompt, answer, finish
        case questionIndex = "question_index", instructionIndex = "instruction_index"
        case promptIds = "prompt_ids", answerIds = "answer_ids"
    }

    /// The row's key (judgments.jsonl refers to rows by it; row seeds derive from it): the one place it is spelled.
    public var key: String {
        Self.key(set: set, questionIndex: questionIndex, instructionIndex: instructionIndex, sample: sample, side: side)
    }

    public static func key(set: ResponseSet, questionIndex: Int, instructionIndex: Int, sample: Int, side: Side) -> String {
        "\(set)/q\(questionIndex)/i\(instructionIndex)/s\(sample)/\(side)"
    }
}

/// Judge scores of one response (nil = no usable score): a line of an extraction's or a steering sweep's
/// judgments.jsonl.
public struct JudgmentRecord: Codable, Sendable, Equatable {
    public var key: String
    public var trait: Double?
    public var coherence: Double?
    public var judge: String
}

/// How many pairs each filter kept (persona_vectors' row-aligned filter, docs/extraction.md).
public struct FilterReport: Codable, Sendable, Equatable {
    public var set: ResponseSet
    public var pairs = 0
    public var judged: Bool
    public var nonEmptyAnswers = 0
    public var positiveTraitOK = 0
    public var negativeTraitOK = 0
    public var positiveCoherent = 0
    public var negativeCoherent = 0
    public var missingScores = 0
    public var kept = 0
    public var threshold: Double
    public var coherenceThreshold: Double = 50

    public var text: String {
        if !judged {
            return "\(set): \(pairs) pairs, no judge: kept \(kept) with non-empty answers on both sides"
        }
        let rows: [(String, Int)] = [
            ("both answers non-empty", nonEmptyAnswers),
            ("pos trait >= \(fmt(threshold))", positiveTraitOK),
            ("neg trait < \(fmt(100 - threshold))", negativeTraitOK),
            ("pos coherence >= \(fmt(coherenceThreshold))", positiveCoherent),
            ("neg coherence >= \(fmt(coherenceThreshold))", negativeCoherent),
            ("pairs with a missing score", missingScores),
            ("kept (all of the above)", kept),
        ]
        let width = rows.map(\.0.count).max()! + 2
        return "\(set): \(pairs) pairs\n" + rows.map { "  " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "\($0.1)" }
            .joined(separator: "\n")
    }
    private func fmt(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(x) }
}

/// Progress callback: (done, total, stage).
public typealias ExtractionProgress = (Int, Int, String) -> Void

/// A resumable persona_vectors extraction in a run folder:
/// run.json (settings), trait.json, responses.jsonl (write-ahead), judgments.jsonl (write-ahead),
/// then pos.csv / neg.csv (persona_vectors columns), filter.json, sums.json (exact sufficient statistics),
/// vectors.safetensors and layer_report.json.
public final class ExtractionRun {
    public static let sets = ResponseSet.allCases
    public let folder: URL
    public let trait: TraitDefinition
    public let options: ExtractionOptions
    public let loaded: LoadedModel
    /// Raw text prompts ("{instruction}\n\n{question}" after BOS) when the model has no chat template.
    public var raw: Bool { loaded.tokenizer.chatTemplate == nil }
    private let responsesLog: AppendLog<ResponseRecord>
    private let judgmentsLog: AppendLog<JudgmentRecord>
    public private(set) var responses: [String: ResponseRecord] = [:]
    public private(set) var judgments: [String: JudgmentRecord] = [:]
    /// The folder ran other thresholds before (and nothing else different): its answers are filtered again.
    public let refiltered: Bool

    public init(folder: URL, trait: TraitDefinition, options: ExtractionOptions, loaded: LoadedModel) throws {
        self.folder = folder
        self.trait = trait
        self.options = options
        self.loaded = loaded
        // The thresholds only filter what was generated and judged, so a rerun may change them: it filters the
        // same answers again (the old thresholds' sums and vectors are removed, not left beside the new run.json).
        refiltered = try RunFolder.open(folder, settingsFile: "run.json",
                                        settings: RunMeta(trait: trait.name, model: loaded.name, options: options, traitDefinition: trait),
                                        mismatch: "a run with different settings (trait, model, options or trait file)",
                                        identity: { var m = $0; m.options.threshold = 0; m.options.coherenceThreshold = 0; return m },
                                        derived: ["sums.json", "vectors.safetensors", "layer_report.json", "filter.json"])
        responsesLog = AppendLog(folder.appendingPathComponent("responses.jsonl"))
        judgmentsLog = AppendLog(folder.appendingPathComponent("judgments.jsonl"))
        for r in try responsesLog.readAll() { responses[r.key] = r }
        for j in try judgmentsLog.readAll() { judgments[j.key] = j }
    }

    struct RunMeta: Codable, Equatable {
        var trait: String
        var model: String
        var options: ExtractionOptions
        var traitDefinition: TraitDefinition
    }

    // MARK: units

    public struct Unit: Sendable, Equatable {
        public var set: ResponseSet
        public var questionIndex: Int
        public var instructionIndex: Int
        public var sample: Int

        public func key(_ side: Side) -> String {
            ResponseRecord.key(set: set, questionIndex: questionIndex, instructionIndex: instructionIndex, sample: sample, side: side)
        }
    }

    public func questions(_ set: ResponseSet) -> [String] {
        let qs = set == .extract ? trait.questions : trait.evalQuestions
        let limit = set == .extract ? options.questionLimit : options.evalQuestionLimit
        return Array(qs.prefix(limit ?? qs.count))
    }

    /// This shard's units of a set, in a fixed order.
    public func units(_ set: ResponseSet) -> [Unit] {
        let n = set == .extract ? options.samplesPerQuestion : options.evalSamplesPerQuestion
        var out: [Unit] = []
        var index = 0
        for q in questions(set).indices {
            for i in trait.instruction.indices {
                for s in 0..<n {
                    if options.shard.owns(index) { out.append(Unit(set: set, questionIndex: q, instructionIndex: i, sample: s)) }
                    index += 1
                }
            }
        }
        return out
    }

    /// System prompt of a side ("You are a/an {name} assistant. {instruction}"), or the raw-text prefix for template-less models.
    public func systemText(side: Side, instructionIndex: Int) -> String {
        let pair = trait.instruction[instructionIndex]
        let instruction = side == .pos ? pair.pos : pair.neg
        if raw { return instruction }
        if side == .neg { return "You are a helpful assistant. \(instruction)" }
        let article = trait.name.first.map { "aeiouAEIOU".contains($0) } == true ? "an" : "a"
        return "You are \(article) \(trait.name) assistant. \(instruction)"
    }

    /// Prompt ids of a row: chat template with the system prompt (merged into the user turn when the template
    /// has no system role), or for raw models BOS + "{instruction}\n\n{question}".
    public func promptIds(_ unit: Unit, side: Side) throws -> [Int] {
        let q = questions(unit.set)[unit.questionIndex]
        return try Generator(loaded).promptIds(for: q, system: systemText(side: side, instructionIndex: unit.instructionIndex), raw: raw)
    }

    // MARK: stage 1: generation

    /// Generates every missing response of this shard (temperature 1, top_p 1, a seed per row), `batchSize`
    /// sequences at a time in one batched forward pass, appending each row to responses.jsonl as soon as it
    /// completes. Rows depend only on their own seed, so the batch size does not change what is drawn (up to f32
    /// rounding of the batched products) and a run may resume with another batch size. `stopAfter` (tests) stops
    /// after that many new rows, like a kill. Returns the number of rows generated now.
    @discardableResult
    /// `onTokens(n)` is called for every `n` tokens generated (for a tokens/s figure while a batch is running).
    public func generate(batchSize: Int = 16, progress: ExtractionProgress? = nil, stopAfter: Int? = nil,
                         onTokens: ((Int) -> Void)? = nil) throws -> Int {
        guard batchSize >= 1 else { throw VectorError("batch size must be >= 1, got \(batchSize)") }
        let gen = Generator(loaded)
        var todo: [(Unit, Side)] = []
        for set in Self.sets {
            for u in units(set) { for side in Side.allCases where responses[u.key(side)] == nil { todo.append((u, side)) } }
        }
        if let s = stopAfter { todo = Array(todo.prefix(s)) }
        let tok = loaded.tokenizer.tokenizer
        let options = GenerationOptions(maxTokens: self.options.maxTokens, sampling: SamplingParameters(temperature: 1, topP: 1))
        var made = 0
        for start in stride(from: 0, to: todo.count, by: batchSize) {
            let batch = Array(todo[start..<min(todo.count, start + batchSize)])
            let prompts = try batch.map { try promptIds($0.0, side: $0.1) }
            _ = try gen.generate(batch: prompts, options: options, seeds: batch.map { rowSeed($0.0, side: $0.1) },
                                 onToken: { _, _ in onTokens?(1); return true },
                                 onFinish: { i, result in
                let (u, side) = batch[i], ids = prompts[i]
                let rec = ResponseRecord(set: u.set, side: side, questionIndex: u.questionIndex, instructionIndex: u.instructionIndex,
                                         sample: u.sample, question: questions(u.set)[u.questionIndex],
                                         prompt: tok.decode(ids, skipSpecialTokens: false), answer: result.text,
                                         promptIds: ids, answerIds: result.tokenIds, finish: result.finishReason.rawValue)
                try responsesLog.append(rec)   // written ahead the moment the row is done
                responses[rec.key] = rec
                made += 1
                progress?(made, todo.count, "responses")
            })
        }
        return made
    }

    /// A deterministic seed per row, so a resumed run draws what an uninterrupted one would have.
    func rowSeed(_ u: Unit, side: Side) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325 ^ options.seed
        for b in u.key(side).utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }

    /// The rows of this shard, pos and neg aligned; nil where a row is missing.
    public func pairs(_ set: ResponseSet) -> [(unit: Unit, pos: ResponseRecord?, neg: ResponseRecord?)] {
        units(set).map { u in (u, responses[u.key(.pos)], responses[u.key(.neg)]) }
    }

    // MARK: stage 2: judging

    /// Scores every response of this shard without a judgment (trait and coherence), appending to judgments.jsonl.
    public func judge(with judge: any Judge, progress: ExtractionProgress? = nil, inFlight: Int = 16) async throws {
        let coherencePrompt = trait.coherencePrompt ?? JudgePrompt.coherence
        var todo: [ResponseRecord] = []
        for set in Self.sets {
            for p in pairs(set) { for r in [p.pos, p.neg].compactMap({ $0 }) where judgments[r.key] == nil { todo.append(r) } }
        }
        try await JudgingQueue.run(todo, inFlight: inFlight, progress: progress, job: { r in
            let tp = try JudgePrompt.fill(trait.evalPrompt, question: r.question, answer: r.answer)
            let cp = try JudgePrompt.fill(coherencePrompt, question: r.question, answer: r.answer)
            return {
                let (t, c) = try await JudgingQueue.traitAndCoherence(judge, traitPrompt: tp, coherencePrompt: cp)
                return JudgmentRecord(key: r.key, trait: t, coherence: c, judge: judge.name)
            }
        }, record: { j in
            try judgmentsLog.append(j)
            judgments[j.key] = j
        })
    }

    /// Records a judgment made elsewhere (e.g. imported scores); appended like the judge's own.
    public func record(_ j: JudgmentRecord) throws {
        guard responses[j.key] != nil else { throw VectorError("judgment for unknown row '\(j.key)'") }
        try judgmentsLog.append(j)
        judgments[j.key] = j
    }

    // MARK: stage 3: filter

    /// Applies the filter row-aligned: with scores, keep = pos.trait >= t, neg.trait < 100 - t, both coherence >= the
    /// coherence threshold (50 by default);
    /// without (`judged` false), pairs with non-empty answers on both sides. Missing rows are never kept.
    public func filter(_ set: ResponseSet, judged: Bool) -> (kept: [(pos: ResponseRecord, neg: ResponseRecord)], report: FilterReport) {
        var rep = FilterReport(set: set, judged: judged, threshold: options.threshold, coherenceThreshold: options.coherenceThreshold)
        var kept: [(pos: ResponseRecord, neg: ResponseRecord)] = []
        let t = options.threshold, ct = options.coherenceThreshold
        for p in pairs(set) {
            rep.pairs += 1
            guard let pos = p.pos, let neg = p.neg else { continue }
            let nonEmpty = !pos.answerIds.isEmpty && !neg.answerIds.isEmpty
            if nonEmpty { rep.nonEmptyAnswers += 1 }
            if !judged { if nonEmpty { kept.append((pos, neg)) }; continue }
            let jp = judgments[pos.key], jn = judgments[neg.key]
            if jp?.trait == nil || jn?.trait == nil || jp?.coherence == nil || jn?.coherence == nil { rep.missingScores += 1 }
            let a = (jp?.trait).map { $0 >= t } ?? false
            let b = (jn?.trait).map { $0 < 100 - t } ?? false
            let c = (jp?.coherence).map { $0 >= ct } ?? false
            let d = (jn?.coherence).map { $0 >= ct } ?? false
            if a { rep.positiveTraitOK += 1 }
            if b { rep.negativeTraitOK += 1 }
            if c { rep.positiveCoherent += 1 }
            if d { rep.negativeCoherent += 1 }
            if nonEmpty && a && b && c && d { kept.append((pos, neg)) }
        }
        rep.kept = kept.count
        return (kept, rep)
    }

    // MARK: stage 4: activations

    /// Forwards each kept pair's prompt + answer ids and accumulates the three averages for every row,
    /// `batchSize` pairs (2 x batchSize sequences) per batched forward pass so short rows still fill the GEMM.
    public func accumulate(_ kept: [(pos: ResponseRecord, neg: ResponseRecord)], batchSize: Int = 4,
                           progress: ExtractionProgress? = nil) throws -> ActivationSums {
        let cfg = loaded.config
        // summed inside the forward pass: no hidden states are kept
        let acc = ActivationAccumulator(numRows: cfg.numLayers + 1, hiddenSize: cfg.hiddenSize)
        let n = max(1, batchSize)
        for start in stride(from: 0, to: kept.count, by: n) {
            let group = kept[start..<min(kept.count, start + n)]
            let seqs = try group.flatMap { [($0.pos, true), ($0.neg, false)] }.map { r, isPos in
                let ids = r.promptIds + r.answerIds
                return BatchSequence(tokens: ids, cache: loaded.model.makeCache(capacity: ids.count),
                                     hooks: try acc.hooks(promptLength: r.promptIds.count, total: ids.count, positive: isPos))
            }
            if !seqs.isEmpty { try loaded.model.forward(batch: seqs, logits: .none) }
            progress?(start + group.count, kept.count, "pairs forwarded")
        }
        return acc.statistics()
    }

    /// Traces each pair's positive and negative row (prompt + answer ids), `pairsPerPass` pairs per batched forward
    /// pass, calling `body` for every row in order (pos before neg) and `progress` with the pairs done so far.
    func traceRows(_ pairs: [(pos: ResponseRecord, neg: ResponseRecord)], pairsPerPass: Int, progress: (Int) -> Void,
                   _ body: (ResponseRecord, Bool, HiddenStateTrace) throws -> Void) throws {
        let n = max(1, pairsPerPass)
        for start in stride(from: 0, to: pairs.count, by: n) {
            let group = pairs[start..<min(pairs.count, start + n)]
            let rows = group.flatMap { [($0.pos, true), ($0.neg, false)] }
            let traces = try HiddenStateTrace.run(model: loaded.model, batch: rows.map { $0.0.promptIds + $0.0.answerIds }, logits: .none)
            for ((r, isPos), trace) in zip(rows, traces) { try body(r, isPos, trace) }
            progress(start + group.count)
        }
    }

    // MARK: outputs

    /// Writes pos.csv / neg.csv (and eval_pos.csv / eval_neg.csv) with persona_vectors' columns.
    public func writeCSVs() throws {
        for set in Self.sets {
            for side in Side.allCases {
                var lines = ["question,prompt,answer,question_id,\(CSV.escape(trait.name)),coherence"]
                for p in pairs(set) {
                    guard let r = side == .pos ? p.pos : p.neg else { continue }
                    let j = judgments[r.key]
                    let cols = [r.question, r.prompt, r.answer, "\(trait.name)_\(r.questionIndex)_\(side)_i\(r.instructionIndex)_s\(r.sample)",
                                j?.trait.map { String($0) } ?? "", j?.coherence.map { String($0) } ?? ""]
                    lines.append(cols.map(CSV.escape).joined(separator: ","))
                }
                let name = (set == .extract ? "" : "eval_") + side.rawValue + ".csv"
                try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent(name), options: .atomic)
            }
        }
    }

    static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { try enc.encode(value).write(to: url, options: .atomic) } catch {
            throw VectorError("\(url.path): cannot write (\(error.localizedDescription))")
        }
    }

    static func readJSON<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw VectorError("\(url.path): cannot read (\(error.localizedDescription))") }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw VectorError("\(url.path): not a valid \(T.self) file (\(error.localizedDescription))")
        }
    }
}
