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
        discussion: """
        Scores are (h . v)/||v|| of each generated token's own hidden state at the trait's row \
        (HF hidden-state row l = blocks.{l-1}.hook_resid_post). --layers takes HF rows, 'all' or 'recommended'.
        """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var vectorOptions: VectorOptions
    @Option(help: "HF hidden-state rows to record: 16, 8,16 or all (default: each vector's recommended row).") var layers: String = "recommended"
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "A prompt set: per-token-project JSON, JSONL or CSV.") var prompts: String?
    @Option(name: .customLong("max-tokens")) var maxTokens: Int = 64
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var steering: SteeringOptions
    @Flag(help: "Skip the chat template.") var raw = false
    @Option(help: "System prompt.") var system: String?
    @Flag(name: .customLong("include-prompt"), help: "Also score the prompt tokens.") var includePrompt = false
    @Option(name: .customLong("top-k-alternatives"), help: "Record this many top alternatives per token.") var topAlternatives: Int = 5
    @Flag(name: .customLong("json-lines"), help: "Stream one JSON event per line on stdout.") var jsonLines = false
    @Option(help: "Output run JSON file.") var out: String

    func validate() throws {
        if (prompt == nil) == (prompts == nil) { throw ValidationError("give exactly one of --prompt or --prompts") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be >= 1") }
        if topAlternatives < 0 || topAlternatives > 50 { throw ValidationError("--top-k-alternatives must be in 0...50") }
    }

    func run() throws {
        try OutputFile.checkWritable(out, option: "--out")
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        let vectors = try vectorOptions.load(numLayers: loaded.config.numLayers)
        let session = try MonitorSession(loaded: loaded, vectors: vectors)
        let (specs, condition) = try steering.parsed()
        let layerSel = try LayerSelection(parsing: layers)
        let items: [PromptItem] = try prompt.map { [PromptItem(prompt: $0)] } ?? PromptSet.load(URL(fileURLWithPath: prompts!))
        let texts = items.map(\.prompt)
        let live = LiveView(enabled: !jsonLines && isatty(STDOUT_FILENO) != 0)
        var docs: [RunDocument] = []
        // A prompt set is journaled so that an interrupted run resumes without redoing or duplicating prompts.
        let journal = prompts != nil ? try RunJournal(out: out, prompts: texts) : nil
        if let journal, !journal.done.isEmpty, !jsonLines {
            note("resuming: \(journal.done.count) of \(texts.count) prompts already done (\(journal.url.lastPathComponent))")
        }
        let progress = Progress(total: texts.count, label: "prompts", enabled: texts.count > 1 && !jsonLines)
        for (i, text) in texts.enumerated() {
            if let finished = journal?.done[i] {
                docs.append(finished)
                progress.step()
                continue
            }
            var req = MonitorRequest(prompt: text, options: GenerationOptions(
                maxTokens: maxTokens, sampling: sampling.parameters, topLogprobs: topAlternatives))
            req.system = system
            req.raw = raw
            req.traits = vectorOptions.selected
            req.layers = layerSel
            req.steering = specs
            req.condition = condition
            req.includePrompt = includePrompt
            live.begin(prompt: text)
            var doc = try session.run(req) { tok in
                if jsonLines {
                    printJSONLine(["event": "token", "prompt_index": i, "index": tok.event.index, "id": tok.event.id,
                                   "text": tok.event.display, "logprob": Double(tok.event.logprob), "scores": tok.scores])
                }
                live.token(tok)
                return true
            }
            if !items[i].tags.isEmpty { doc.metadata["tags"] = .array(items[i].tags.map { .string($0) }) }
            live.end(doc)
            if jsonLines { printJSONLine(["event": "done", "prompt_index": i, "run_id": doc.id, "num_tokens": doc.tokens.count]) }
            try journal?.append(index: i, prompt: text, run: doc)
            docs.append(doc)
            progress.step()
        }
        let data = texts.count == 1 && prompt != nil ? try docs[0].jsonData() : try RunDocument.jsonData(docs)
        try OutputFile.write(data, to: out, option: "--out")
        journal?.finish()
        if !jsonLines { note("wrote \(docs.count) run\(docs.count == 1 ? "" : "s") to \(out)") }
    }
}

func printJSONLine(_ obj: [String: Any]) {
    if let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), let s = String(data: d, encoding: .utf8) {
        print(s)
        fflush(stdout)
    }
}
