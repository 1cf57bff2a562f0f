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

    /// The judge, made before generation: a bad local model path fails at once, and an OpenAI judge gets one
    /// checked request (`OpenAIJudge.preflight`) when `pending` answers are still to be generated, so a wrong URL,
    /// key or model name, or a server without logprobs, stops the run before the generation rather than after it.
    /// (With nothing left to generate the check is skipped: a finished run's judgments may all be cached.)
    func prepare(out: URL, extractionModel: LoadedModel, pending: Int) async throws -> (any Judge)? {
        let judge = try make(out: out, extractionModel: extractionModel)
        if let oj = judge as? OpenAIJudge, pending > 0 {
            do {
                for w in try await oj.preflight() { note("warning: --judge openai: \(w)") }
            } catch {
                throw ValidationError("--judge openai: \(error)\nNothing was generated yet; check --judge-base-url / OPENAI_BASE_URL, --judge-model / PERSONA_JUDGE_MODEL and OPENAI_API_KEY, or use --judge none")
            }
        }
        return judge
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
        (responses.jsonl and judgments.jsonl are written ahead, row by row). A rerun may change --threshold and \
        --coherence-threshold only: it filters the same answers again, generating and judging nothing twice. Vectors are HF hidden-state rows \
        0...L (row l = output of block l-1), positive = the trait's 'positive' statement.

        Several traits (--trait a,b or all) go to OUT/<trait>, one after another. With --shard i/N only sums.json \
        is produced; combine shards with `persona extract merge`. Without --shard, a task of a Slurm job array \
        (SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT) or of a Kubernetes Indexed Job (JOB_COMPLETION_INDEX with \
        PERSONA_SHARD_COUNT) takes its share from the environment: the N tasks are split evenly over the traits, \
        task i doing trait i / K, shard i % K of K = N / traits, in OUT[/<trait>]/shards/<i>-of-<K> so that \
        tasks never share a folder. `persona extract merge OUT` then merges every trait.
        """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var precisionOption: PrecisionOption
    @Option(help: "Built-in trait name or trait .json file; several separated by commas, or all (the built-in ones).")
    var trait: String
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
    @Option(help: "Shard i/N of the work (0-based). Default: the job array task's share (Slurm, Kubernetes), else all of it.")
    var shard: String?
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
        if let shard { do { _ = try Shard(parsing: shard) } catch { throw ValidationError("\(error)") } }
        if traitNames.isEmpty { throw ValidationError("--trait: no trait named") }
    }

    /// The traits named by --trait, in order.
    var traitNames: [String] {
        if trait == "all" { return BuiltinTraits.names }
        return trait.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// One trait's run: which shard, into which folder.
    struct Job { var definition: TraitDefinition; var shard: Shard; var folder: URL }

    func plan() throws -> [Job] {
        var defs: [TraitDefinition] = []
        for name in traitNames {
            var def = try BuiltinTraits.resolve(name)
            if let f = evalQuestionsFile { def.evalQuestions = try TraitDefinition.load(URL(fileURLWithPath: f)).questions }
            let (errors, warnings) = def.validate()
            if !errors.isEmpty { throw ValidationError("trait \(def.name): " + errors.joined(separator: "; ")) }
            for w in warnings { note("trait \(def.name): warning: \(w)") }
            defs.append(def)
        }
        let names = defs.map(\.name)
        if Set(names).count != names.count { throw ValidationError("--trait names a trait twice: \(names.joined(separator: ","))") }
        let root = URL(fileURLWithPath: out)
        let several = defs.count > 1
        func base(_ d: TraitDefinition) -> URL { several ? root.appendingPathComponent(d.name) : root }
        if let shard {
            let s = try Shard(parsing: shard)
            // An explicit shard of one trait goes where --out says (the caller names the folders).
            return defs.map { Job(definition: $0, shard: s, folder: several && s.count > 1
                                  ? base($0).appendingPathComponent("shards/\(s.folderName)") : base($0)) }
        }
        if let task = try ArrayTask.fromEnvironment(ProcessInfo.processInfo.environment) {
            let (t, s) = try task.split(traits: defs.count)
            let folder = s.count > 1 ? base(defs[t]).appendingPathComponent("shards/\(s.folderName)") : base(defs[t])
            note("work share from the environment: \(task) -> trait \(defs[t].name), shard \(s) in \(folder.path)")
            return [Job(definition: defs[t], shard: s, folder: folder)]
        }
        return defs.map { Job(definition: $0, shard: .whole, folder: base($0)) }
    }

    func run() async throws {
        let jobs = try plan()
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        precisionOption.apply(to: loaded.model)
        for (k, job) in jobs.enumerated() {
            if jobs.count > 1 { note("trait \(k + 1) of \(jobs.count): \(job.definition.name) -> \(job.folder.path)") }
            try await extract(job, loaded: loaded)
        }
    }

    func extract(_ job: Job, loaded: LoadedModel) async throws {
        let def = job.definition
        var opts = ExtractionOptions()
        opts.samplesPerQuestion = nPerQuestion
        opts.evalSamplesPerQuestion = nEval
        opts.maxTokens = maxTokens
        opts.threshold = threshold
        opts.coherenceThreshold = coherenceThreshold
        opts.questionLimit = questions
        opts.evalQuestionLimit = evalCount
        opts.seed = seed
        opts.shard = job.shard
        let folder = job.folder
        let run = try ExtractionRun(folder: folder, trait: def, options: opts, loaded: loaded)
        if run.refiltered {
            note("\(folder.path) ran other --threshold / --coherence-threshold before: its answers and judgments are kept and filtered again with these (the old sums and vectors are replaced)")
        }
        if run.raw { note("\(loaded.name) has no chat template: prompts are raw text \"{instruction}\\n\\n{question}\" after BOS") }

        let total = ExtractionRun.sets.reduce(0) { $0 + 2 * run.units($1).count }
        let have = run.responses.count
        if have > 0 { note("resuming: \(have) of \(total) responses already in \(folder.path)/responses.jsonl") }
        let judge = try await judgeOptions.prepare(out: folder, extractionModel: loaded, pending: total - have)
        let gp = Progress(total: max(0, total - have), label: "responses")
        try run.generate(batchSize: batchSize, progress: { done, _, _ in gp.update(done) }, onTokens: { gp.addTokens($0) })

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
            print("shard \(opts.shard) of \(def.name): wrote \(folder.path)/sums.json; when all \(opts.shard.count) are done: `persona extract merge \(out) --model \(modelOption.model)`")
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
        discussion: """
        Give the shard folders and --out, or the --out folder of sharded `persona extract` tasks: OUT (its \
        shards/*) or OUT with one folder per trait (each trait's shards/* merged into OUT/<trait>). Missing, \
        unfinished, repeated or mismatched shards are refused. With --model, the layer report is computed from \
        the shards' held-out eval responses.
        """)
    @Argument(help: "Shard run folders, or the folder holding them.") var folders: [String]
    @Option(help: "Output folder (default: the folder holding the shards).") var out: String?
    @Option(help: "The model the shards ran (needed for the layer report).") var model: String?

    /// (shard folders, output folder) for every merge to do.
    func plan() throws -> [(shards: [URL], out: URL)] {
        let fm = FileManager.default
        func isDir(_ u: URL) -> Bool { var d: ObjCBool = false; return fm.fileExists(atPath: u.path, isDirectory: &d) && d.boolValue }
        func shardFolders(_ dir: URL) throws -> [URL] {
            let names = try fm.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
            return names.map { dir.appendingPathComponent($0) }.filter(isDir)
        }
        let urls = folders.map { URL(fileURLWithPath: $0) }
        for u in urls where !isDir(u) { throw ValidationError("\(u.path): no such folder") }
        if urls.count == 1, !fm.fileExists(atPath: urls[0].appendingPathComponent("sums.json").path) || isDir(urls[0].appendingPathComponent("shards")) {
            let root = urls[0]
            if isDir(root.appendingPathComponent("shards")) {
                return [(try shardFolders(root.appendingPathComponent("shards")), out.map { URL(fileURLWithPath: $0) } ?? root)]
            }
            let traits = try shardFolders(root).filter { isDir($0.appendingPathComponent("shards")) }
            guard !traits.isEmpty else {
                throw ValidationError("\(root.path) holds neither sums.json, nor shards/, nor trait folders with shards/")
            }
            if out != nil { throw ValidationError("--out is not used when merging every trait of \(root.path) (each goes to its own folder)") }
            return try traits.map { (try shardFolders($0.appendingPathComponent("shards")), $0) }
        }
        guard let out else { throw ValidationError("--out is needed when shard folders are listed one by one") }
        return [(urls, URL(fileURLWithPath: out))]
    }

    func run() async throws {
        let merges = try plan()
        let loaded = try model.map { try ModelLoader.load(path: ModelReference.resolve($0).path) }
        if loaded == nil { note("no --model: vectors without a layer report or recommended row") }
        for m in merges {
            note("merging \(m.shards.count) shards into \(m.out.path)")
            let merged = try ExtractionPipeline.mergeSums(m.shards)
            var evalPairs: [(pos: ResponseRecord, neg: ResponseRecord)] = []
            var forward: ExtractionRun? = nil
            if let loaded {
                for u in m.shards {
                    let r = try ExtractionRun.open(folder: u, loaded: loaded)
                    let judged = !r.judgments.isEmpty
                    evalPairs += r.filter(.eval, judged: judged).kept
                    forward = forward ?? r
                }
            }
            let outcome = try ExtractionPipeline.finish(sums: merged.sums, trait: merged.trait, model: merged.model,
                                                        positive: merged.positive, evalPairs: evalPairs, forwardWith: forward,
                                                        out: m.out)
            printOutcome(outcome, folder: m.out)
        }
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
