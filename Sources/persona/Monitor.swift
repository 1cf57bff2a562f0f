import ArgumentParser
import Foundation
import PersonaCore
import PersonaGeneration
import PersonaModels
import PersonaRuns

struct VectorOptions: ParsableArguments {
    @Option(help: "Trait vector file (ours .safetensors, persona_vectors .pt, control-vector .gguf) or a folder of them.")
    var vectors: String
    @Option(help: "Traits to use: a,b,c or all.") var traits: String = "all"

    func load(numLayers: Int) throws -> [TraitVector] {
        try VectorFiles.load(URL(fileURLWithPath: vectors), numLayers: numLayers)
    }

    var selected: [String]? {
        traits == "all" ? nil : traits.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

struct SteeringOptions: ParsableArguments {
    @Option(name: .customLong("steer"), help: "trait:coef[@layer][:all|prompt|response] or trait:ablate[@layer][:positions]; repeatable.")
    var steer: [String] = []
    @Option(name: .customLong("steer-when"), help: "Closed loop: apply --steer only while a monitored projection crosses a threshold, e.g. evil>2.5.")
    var steerWhen: String?

    func parsed() throws -> (specs: [SteeringSpec], condition: SteeringCondition?) {
        let specs = try steer.map { try SteeringSpec(parsing: $0) }
        let cond = try steerWhen.map { try SteeringCondition(parsing: $0) }
        if cond != nil && specs.isEmpty { throw ValidationError("--steer-when needs at least one --steer") }
        return (specs, cond)
    }
}

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate while recording every token's projection onto trait vectors; write a run JSON.",
        subcommands: [MonitorRun.self, MonitorMerge.self], defaultSubcommand: MonitorRun.self)
}

struct MonitorRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Monitor one prompt or a prompt set; the default, so `persona monitor --model ...` works.",
        discussion: """
        Scores are (h . v)/||v|| of each generated token's own hidden state at the trait's row \
        (HF hidden-state row l = blocks.{l-1}.hook_resid_post). --layers takes HF rows, 'all' or 'recommended'.

        With --prompts, --shard i/N (or, without it, a Slurm array task or Kubernetes Indexed Job's share from the \
        environment) does the prompts whose index % N == i and writes OUT with .shard-i-of-N before its \
        extension; `persona monitor merge OUT` joins the shards in prompt order. --shard 0/1 ignores the environment.
        """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup var vectorOptions: VectorOptions
    @Option(help: "HF hidden-state rows to record: 16, 8,16 or all (default: each vector's recommended row).") var layers: String = "recommended"
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "A prompt set: per-token-project JSON, JSONL, CSV (a prompt column) or .txt (one prompt per line).") var prompts: String?
    @Option(name: .customLong("max-tokens")) var maxTokens: Int = 64
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var steering: SteeringOptions
    @Flag(help: "Skip the chat template.") var raw = false
    @Option(help: "System prompt.") var system: String?
    @Flag(name: .customLong("include-prompt"), help: "Also score the prompt tokens.") var includePrompt = false
    @Option(name: .customLong("top-k-alternatives"), help: "Record this many top alternatives per token.") var topAlternatives: Int = 5
    @Flag(name: .customLong("json-lines"), help: "Stream one JSON event per line on stdout.") var jsonLines = false
    @Option(name: .customLong("batch-size"), help: "With --prompts: prompts generated together in one batched forward pass per step (1: one at a time, with the live view on a terminal).")
    var batchSize: Int = 8
    @Option(help: "With --prompts: shard i/N of the prompts (default: a job array task's share, else all).") var shard: String?
    @Option(help: "Output run JSON file.") var out: String

    func validate() throws {
        if (prompt == nil) == (prompts == nil) { throw ValidationError("give exactly one of --prompt or --prompts") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be >= 1") }
        if topAlternatives < 0 || topAlternatives > 50 { throw ValidationError("--top-k-alternatives must be in 0...50") }
        if batchSize < 1 { throw ValidationError("--batch-size must be >= 1") }
        if let shard {
            do { _ = try Shard(parsing: shard) } catch { throw ValidationError("\(error)") }
            if prompts == nil { throw ValidationError("--shard needs --prompts") }
        }
    }

    /// This process's part of the prompt set: --shard, else the job array's share, else all.
    func share() throws -> Shard {
        if shard == nil && prompts == nil { return .whole }
        return try workShare(shard)
    }

    func run() throws {
        let share = try share()
        let out = share.count > 1 ? MonitorShards.path(self.out, share) : self.out
        try OutputFile.checkWritable(out, option: "--out")
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        precisionOption.apply(to: loaded.model)
        let vectors = try vectorOptions.load(numLayers: loaded.config.numLayers)
        VectorFiles.otherModelNotes(vectors, model: loaded.name).forEach(note)
        let session = try MonitorSession(loaded: loaded, vectors: vectors)
        let (specs, condition) = try steering.parsed()
        let layerSel = try LayerSelection(parsing: layers)
        let items: [PromptItem] = try prompt.map { [PromptItem(prompt: $0)] } ?? PromptSet.load(URL(fileURLWithPath: prompts!))
        let texts = items.map(\.prompt)
        // several prompts in flight interleave their tokens: the live view is for one at a time
        let batch = prompts == nil ? 1 : batchSize
        let live = LiveView(enabled: !jsonLines && batch == 1 && isatty(STDOUT_FILENO) != 0)
        var docs = [RunDocument?](repeating: nil, count: texts.count)
        // A prompt set is journaled so that an interrupted run resumes without redoing or duplicating prompts.
        let journal = prompts != nil ? try RunJournal(out: out, prompts: texts) : nil
        if let journal, !journal.done.isEmpty, !jsonLines {
            note("resuming: \(journal.done.count) of \(texts.count) prompts already done (\(journal.url.lastPathComponent))")
        }
        let mine = texts.indices.filter { share.owns($0) }.count
        let progress = Progress(total: mine, label: "prompts", enabled: mine > 1 && !jsonLines)
        // One prompt without the live view (stdout a file or a pipe): its tokens' progress and a summary on stderr,
        // so a long generation is not silent and the scores' gist shows without opening the JSON.
        let quiet = prompt != nil && !jsonLines && !live.enabled
        let tokenProgress = Progress(total: maxTokens, label: "tokens", enabled: quiet)
        var todo: [Int] = []
        if share.count > 1 && !jsonLines {
            note("shard \(share): \(texts.indices.filter { share.owns($0) }.count) of \(texts.count) prompts -> \(out)")
        }
        for i in texts.indices where share.owns(i) {
            if let finished = journal?.done[i] {
                docs[i] = finished
                progress.step()
            } else {
                todo.append(i)
            }
        }
        func request(_ i: Int) -> MonitorRequest {
            var req = MonitorRequest(prompt: texts[i], options: GenerationOptions(
                maxTokens: maxTokens, sampling: sampling.parameters, topLogprobs: topAlternatives))
            req.system = system
            req.raw = raw
            req.traits = vectorOptions.selected
            req.layers = layerSel
            req.steering = specs
            req.condition = condition
            req.includePrompt = includePrompt
            return req
        }
        func streamed(_ i: Int, _ tok: MonitoredToken) {
            if jsonLines {
                // text: the token shown on its own (bytes of a split character as <0xNN>, as the run's tokens);
                // piece: what it adds to the response, so that a reader can print the pieces as they come.
                printJSONLine(["event": "token", "prompt_index": i, "index": tok.event.index, "id": tok.event.id,
                               "text": tok.event.display, "piece": tok.event.released, "logprob": Double(tok.event.logprob),
                               "scores": tok.scores])
            }
            live.token(tok)
            tokenProgress.step()
        }
        func finished(_ i: Int, _ run: RunDocument) throws {
            var doc = run
            if !items[i].tags.isEmpty { doc.metadata["tags"] = .array(items[i].tags.map { .string($0) }) }
            if share.count > 1 { doc.metadata["prompt_index"] = JSONValue(exactly: Int64(i)); doc.metadata["shard"] = .string(share.description) }
            live.end(doc)
            if quiet {
                tokenProgress.finish()
                note(MonitorSummary.line(doc))
            }
            if jsonLines { printJSONLine(["event": "done", "prompt_index": i, "run_id": doc.id, "num_tokens": doc.tokens.count, "response": doc.response]) }
            try journal?.append(index: i, prompt: texts[i], run: doc)   // written ahead the moment it is done
            docs[i] = doc
            progress.step()
        }
        for start in stride(from: 0, to: todo.count, by: batch) {
            let group = Array(todo[start..<min(todo.count, start + batch)])
            if group.count == 1 {
                let i = group[0]
                live.begin(prompt: texts[i])
                try finished(i, try session.run(request(i)) { tok in streamed(i, tok); return true })
            } else {
                _ = try session.run(batch: group.map(request), onToken: { k, tok in streamed(group[k], tok); return true },
                                    onFinish: { k, doc in try finished(group[k], doc) })
            }
        }
        let all = docs.compactMap { $0 }
        let data = texts.count == 1 && prompt != nil ? try all[0].jsonData() : try RunDocument.jsonData(all)
        try OutputFile.write(data, to: out, option: "--out")
        journal?.finish()
        if !jsonLines { note("wrote \(all.count) run\(all.count == 1 ? "" : "s") to \(out)") }
    }
}

/// `persona monitor`'s one-line summary of a run on stderr when no live view shows it.
enum MonitorSummary {
    /// "24 tokens, 131.0 tok/s, finish: stop; mean score: evil -47.1, refusal +3.2" (each trait at its row).
    static func line(_ doc: RunDocument) -> String {
        let tps = doc.metadata["tokens_per_s"]?.doubleValue.map { String(format: ", %.1f tok/s", $0) } ?? ""
        let finish = doc.metadata["finish_reason"]?.stringValue.map { ", finish: \($0)" } ?? ""
        let means = doc.traitNames.compactMap { t in doc.stats?[t].map { "\(t) " + String(format: "%+.1f", $0.mean) } }
        return "\(doc.tokens.count) tokens\(tps)\(finish)" + (means.isEmpty ? "" : "; mean score: " + means.joined(separator: ", "))
    }
}

func printJSONLine(_ obj: [String: Any]) {
    if let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), let s = String(data: d, encoding: .utf8) {
        print(s)
        fflush(stdout)
    }
}

/// Where the shards of a sharded `monitor --prompts` go, and how they are joined again.
enum MonitorShards {
    /// runs.json -> runs.shard-1-of-4.json (beside OUT, so shards of one run never share a file).
    static func path(_ out: String, _ shard: Shard) -> String {
        let u = URL(fileURLWithPath: out)
        let ext = u.pathExtension
        let stem = ext.isEmpty ? u.lastPathComponent : String(u.lastPathComponent.dropLast(ext.count + 1))
        return u.deletingLastPathComponent().appendingPathComponent("\(stem).shard-\(shard.folderName)\(ext.isEmpty ? "" : "." + ext)").path
    }
}

struct MonitorMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join the shards of a sharded `monitor --prompts` into OUT, in prompt order.",
        discussion: "Finds OUT's shard files (OUT with .shard-i-of-N before its extension); refuses missing, repeated or mixed shards.")
    @Argument(help: "The --out the shards were given.") var out: String

    func run() throws {
        let u = URL(fileURLWithPath: out)
        let dir = u.deletingLastPathComponent()
        let ext = u.pathExtension
        let stem = ext.isEmpty ? u.lastPathComponent : String(u.lastPathComponent.dropLast(ext.count + 1))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        var found: [Shard: URL] = [:]
        for n in names where n.hasPrefix(stem + ".shard-") && (ext.isEmpty || n.hasSuffix("." + ext)) {
            let middle = n.dropFirst(stem.count + 7).dropLast(ext.isEmpty ? 0 : ext.count + 1)
            let parts = middle.split(separator: "-")
            guard parts.count == 3, parts[1] == "of", let i = Int(parts[0]), let c = Int(parts[2]), c >= 1, (0..<c).contains(i) else { continue }
            found[Shard(index: i, count: c)] = dir.appendingPathComponent(n)
        }
        guard let count = found.keys.first?.count else { throw ValidationError("no shard files \(stem).shard-i-of-N\(ext.isEmpty ? "" : "." + ext) in \(dir.path)") }
        guard found.keys.allSatisfy({ $0.count == count }) else {
            throw ValidationError("\(dir.path) holds shards of different splits (\(Set(found.keys.map(\.count)).sorted().map(String.init).joined(separator: ", ")) shards); keep one")
        }
        let missing = (0..<count).filter { found[Shard(index: $0, count: count)] == nil }
        guard missing.isEmpty else {
            throw ValidationError("shards \(missing.map(String.init).joined(separator: ", ")) of \(count) are missing (\(stem).shard-i-of-\(count)); run them (they resume), then merge again")
        }
        var byIndex: [Int: RunDocument] = [:]
        for i in 0..<count {
            let file = found[Shard(index: i, count: count)]!
            for run in try RunImport.load(data: Data(contentsOf: file), source: file.path) {
                guard let p = run.metadata["prompt_index"]?.intValue else {
                    throw ValidationError("\(file.path): a run without metadata.prompt_index; not a shard of `monitor --prompts`")
                }
                guard Shard(index: i, count: count).owns(p), byIndex[p] == nil else {
                    throw ValidationError("\(file.path): prompt \(p) is repeated or belongs to another shard")
                }
                var r = run
                r.metadata["shard"] = nil
                byIndex[p] = r
            }
        }
        let runs = byIndex.keys.sorted().map { byIndex[$0]! }
        try OutputFile.write(try RunDocument.jsonData(runs), to: out, option: "OUT")
        note("merged \(count) shards, \(runs.count) runs, into \(out)")
    }
}
