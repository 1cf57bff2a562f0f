import ArgumentParser
import Foundation
import PersonaCore
import PersonaHub
import PersonaModels

struct JudgeOptions: ParsableArguments {
    @Option(help: "Judge: openai (any OpenAI-compatible server), local (a model file scored offline) or none (no filter).")
    var judge: String = "none"
    @Option(name: .customLong("judge-model"), help: "openai: model name (env PERSONA_JUDGE_MODEL); local: model path (default: the extraction model).")
    var judgeModel: String?
    @Option(name: .customLong("judge-base-url"), help: "OpenAI-compatible base URL, e.g. http://localhost:8080/v1 (env OPENAI_BASE_URL).")
    var judgeBaseURL: String?
    @Option(name: .customLong("judge-api-key"), help: "API key (prefer the env OPENAI_API_KEY).") var judgeAPIKey: String?
    @Option(name: .customLong("judge-concurrency"), help: "Requests in flight at once.") var judgeConcurrency: Int = 8
    @Option(name: .customLong("judge-cache"), help: "Judgment cache folder (default: OUT/judge_cache).") var judgeCache: String?

    func validate() throws {
        guard ["openai", "local", "none"].contains(judge) else { throw ValidationError("--judge must be openai, local or none") }
        if judgeConcurrency < 1 { throw ValidationError("--judge-concurrency must be >= 1") }
    }

    func make(out: URL, extractionModel: LoadedModel) throws -> (any Judge)? {
        switch judge {
        case "openai":
            let cfg = try OpenAIJudge.Configuration.fromEnvironment(baseURL: judgeBaseURL, model: judgeModel, apiKey: judgeAPIKey)
            var c = cfg
            c.concurrency = judgeConcurrency
            let cache = try JudgeCache(directory: judgeCache.map { URL(fileURLWithPath: $0) } ?? out.appendingPathComponent("judge_cache"))
            return OpenAIJudge(c, cache: cache)
        case "local":
            let m = try judgeModel.map { try ModelLoader.load(path: $0) } ?? extractionModel
            return LocalJudge(m)
        default:
            return nil
        }
    }
}

struct Extract: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract a trait vector: contrastive generation, judging, filtering, mean differences, layer report.",
        subcommands: [ExtractRun.self, ExtractMerge.self], defaultSubcommand: ExtractRun.self)
}

struct ExtractRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run (or resume) an extraction; the default, so `persona extract --model ...` works.",
        discussion: """
        Everything goes to the --out run folder and a rerun with the same settings resumes where it stopped \
        (responses.jsonl and judgments.jsonl are written ahead, row by row). Vectors are HF hidden-state rows \
        0...L (row l = output of block l-1), positive = the trait's 'positive' statement. With --shard i/N \
        only sums.json is produced; combine shards with `persona extract merge`.
        """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var precisionOption: PrecisionOption
    @Option(help: "Built-in trait name or trait .json file.") var trait: String
    @Option(name: .customLong("eval-questions"), help: "A trait file whose 'questions' replace the held-out eval set (e.g. a trait_data_eval file).")
    var evalQuestionsFile: String?
    @OptionGroup var judgeOptions: JudgeOptions
    @Option(name: .customLong("n-per-question"), help: "Samples per (question, instruction) and side (upstream: 10).") var nPerQuestion: Int = 1
    @Option(name: .customLong("n-eval"), help: "Samples per (eval question, instruction) and side.") var nEval: Int = 1
    @Option(name: .customLong("max-tokens"), help: "Maximum new tokens per response.") var maxTokens: Int = 256
    @Option(help: "Trait-score threshold t: keep pos >= t and neg < 100 - t.") var threshold: Double = 50
    @Option(name: .customLong("coherence-threshold"), help: "Keep pairs whose answers both score at least this coherence.")
    var coherenceThreshold: Double = 50
    @Option(help: "Use only the first N extraction questions.") var questions: Int?
    @Option(name: .customLong("eval-count"), help: "Use only the first N eval questions.") var evalCount: Int?
    @Option(help: "Shard i/N of the work (0-based).") var shard: String = "0/1"
    @Option(help: "Base seed (each row gets its own seed from it).") var seed: UInt64 = 0
    @Option(name: .customLong("batch-size"), help: "Responses generated at once in one batched forward pass (does not change what is drawn: each row has its own seed).")
    var batchSize: Int = 16
    @Option(help: "Run folder.") var out: String

    func validate() throws {
        if nPerQuestion < 1 || nEval < 1 { throw ValidationError("--n-per-question and --n-eval must be >= 1") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be >= 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be >= 1") }
        if !(0...100).contains(threshold) { throw ValidationError("--threshold must be in 0...100") }
        if !(0...100).contains(coherenceThreshold) { throw ValidationError("--coherence-threshold must be in 0...100") }
        if let q = questions, q < 1 { throw ValidationError("--questions must be >= 1") }
        if let q = evalCount, q < 0 { throw ValidationError("--eval-count must be >= 0") }
        do { _ = try Shard(parsing: shard) } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        var def = try BuiltinTraits.resolve(trait)
        if let f = evalQuestionsFile { def.evalQuestions = try TraitDefinition.load(URL(fileURLWithPath: f)).questions }
        let (errors, warnings) = def.validate()
        if !errors.isEmpty { throw ValidationError("trait \(def.name): " + errors.joined(separator: "; ")) }
        for w in warnings { note("trait \(def.name): warning: \(w)") }

        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        loaded.model.precision = precisionOption.value
        var opts = ExtractionOptions()
        opts.samplesPerQuestion = nPerQuestion
        opts.evalSamplesPerQuestion = nEval
        opts.maxTokens = maxTokens
        opts.threshold = threshold
        opts.coherenceThreshold = coherenceThreshold
        opts.questionLimit = questions
        opts.evalQuestionLimit = evalCount
        opts.seed = seed
        opts.shard = try Shard(parsing: shard)
        let folder = URL(fileURLWithPath: out)
        let run = try ExtractionRun(folder: folder, trait: def, options: opts, loaded: loaded)
        if run.raw { note("\(loaded.name) has no chat template: prompts are raw text \"{instruction}\\n\\n{question}\" after BOS") }

        let total = ExtractionRun.sets.reduce(0) { $0 + 2 * run.units($1).count }
        let have = run.responses.count
        if have > 0 { note("resuming: \(have) of \(total) responses already in \(folder.path)/responses.jsonl") }
        let gp = Progress(total: max(0, total - have), label: "responses")
        try run.generate(batchSize: batchSize, progress: { done, _, _ in gp.update(done) }, onTokens: { gp.addTokens($0) })

        let judge = try judgeOptions.make(out: folder, extractionModel: loaded)
        if let judge {
            let missing = run.responses.values.filter { run.judgments[$0.key] == nil }.count
            let jp = Progress(total: missing, label: "judged")
            try await run.judge(with: judge) { done, _, _ in jp.update(done) }
            if let oj = judge as? OpenAIJudge {
                note("judge \(oj.name): \(oj.counters.requests) requests, \(oj.counters.cacheHits) cache hits, \(oj.counters.retries) retries")
            }
        } else {
            note("no judge: every pair with non-empty answers is kept (pass --judge openai|local to filter)")
        }

        let keptCount = run.filter(.extract, judged: judge != nil).kept.count
        let ap = Progress(total: keptCount, label: "pairs forwarded")
        let (sums, reports, evalKept) = try run.accumulateAndSave(judged: judge != nil) { done, _, _ in ap.update(done) }
        for r in reports { print(r.text) }
        if opts.shard.count > 1 {
            print("shard \(opts.shard): wrote \(folder.path)/sums.json; combine all shards with `persona extract merge DIR... --out DIR --model \(modelOption.model)`")
            return
        }
        let ep = Progress(total: evalKept.count, label: "eval pairs")
        let outcome = try ExtractionPipeline.finish(sums: sums, trait: def.name, model: loaded.name, positive: def.positive,
                                                    evalPairs: evalKept, forwardWith: run, out: folder) { done, _, _ in ep.update(done) }
        printOutcome(outcome, folder: folder)
    }

}

struct ExtractMerge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "merge",
            abstract: "Merge shard run folders exactly (sums of sums and counts) into one vector file.",
            discussion: "With --model, the layer report is computed from the shards' held-out eval responses.")
        @Argument(help: "Shard run folders.") var folders: [String]
        @Option(help: "Output folder.") var out: String
        @Option(help: "The model the shards ran (needed for the layer report).") var model: String?

        func run() async throws {
            let urls = folders.map { URL(fileURLWithPath: $0) }
            let merged = try ExtractionPipeline.mergeSums(urls)
            var evalPairs: [(pos: ResponseRecord, neg: ResponseRecord)] = []
            var forward: ExtractionRun? = nil
            if let model {
                let loaded = try ModelLoader.load(path: ModelReference.resolve(model).path)
                for u in urls {
                    let r = try ExtractionRun.open(folder: u, loaded: loaded)
                    let judged = !r.judgments.isEmpty
                    evalPairs += r.filter(.eval, judged: judged).kept
                    forward = forward ?? r
                }
            } else {
                note("no --model: vectors without a layer report or recommended row")
            }
            let outcome = try ExtractionPipeline.finish(sums: merged.sums, trait: merged.trait, model: merged.model,
                                                        positive: merged.positive, evalPairs: evalPairs, forwardWith: forward,
                                                        out: URL(fileURLWithPath: out))
            printOutcome(outcome, folder: URL(fileURLWithPath: out))
        }
}

func printOutcome(_ o: ExtractionOutcome, folder: URL) {
    for r in o.reports where r.method == AverageMethod.responseAvg.rawValue { print(r.table) }
    for r in o.reports where r.method != AverageMethod.responseAvg.rawValue {
        let best = r.recommendedRow.flatMap { row in r.rows.first { $0.row == row } }
        print("\(r.method): recommended row \(best.map { String($0.row) } ?? "-"), AUROC \(best?.auroc.map { String(format: "%.3f", $0) } ?? "-") (all rows in layer_report.json)")
    }
    if let v = o.vectors.first {
        print("\(v.trait): \(v.samplesPositive ?? 0) pos / \(v.samplesNegative ?? 0) neg samples; recommended row \(v.recommendedRow.map(String.init) ?? "-") (HF hidden-state row = output of block row-1)")
    }
    print("wrote \(folder.path)/vectors.safetensors, sums.json\(o.reports.isEmpty ? "" : ", layer_report.json")")
}
