import ArgumentParser
import Foundation
import PersonaCore
import PersonaModels

struct Screen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Screen training data: flag samples whose responses project above the model's own answers.",
        discussion: """
        For each sample (JSON lines: {"messages": [...]} ending with the assistant's turn, or {"prompt", "response"}), \
        the mean projection of its response on each trait at the trait's monitoring row, minus that of the model's \
        own greedy answer to the same prompt: the paper's projection difference, which predicts how training on the \
        sample would shift the trait. Samples are ranked per trait; the top --flag-top fraction (or those above \
        --flag-above) are written to OUT/flagged.jsonl as they were read, with their differences in \
        OUT/screen.csv. screen.jsonl is written ahead, so a long data set resumes.
        """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup var vectorOptions: VectorOptions
    @Option(help: "The data set (JSON lines).") var data: String
    @Option(name: .customLong("max-tokens"), help: "Longest own answer generated per sample.") var maxTokens: Int = 128
    @Option(name: .customLong("flag-top"), help: "Flag this fraction of samples per trait, highest differences first (rounded up: at least one).") var flagTop: Double = 0.1
    @Option(name: .customLong("flag-above"), parsing: .unconditional, help: "Flag every sample whose difference is above this, which may be negative (replaces --flag-top).") var flagAbove: Double?
    @Option(name: .customLong("batch-size")) var batchSize: Int = 16
    @Option(help: "Output folder.") var out: String

    func validate() throws {
        if !(0...1).contains(flagTop) { throw ValidationError("--flag-top must be in 0...1") }
        if maxTokens < 1 || batchSize < 1 { throw ValidationError("--max-tokens and --batch-size must be >= 1") }
    }

    func run() throws {
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        precisionOption.apply(to: loaded.model)
        let all = try vectorOptions.load(numLayers: loaded.config.numLayers)
        VectorFiles.otherModelNotes(all, model: loaded.name).forEach(note)
        let vectors = try TraitSelection.select(vectorOptions.selected, from: all, option: "--traits")
        let samples = try ScreenSample.load(URL(fileURLWithPath: data))
        let folder = URL(fileURLWithPath: out)
        let screen = try DataScreen(loaded: loaded, vectors: vectors, maxTokens: maxTokens, folder: folder)
        if !screen.results.isEmpty { note("resuming: \(screen.results.count) of \(samples.count) samples already in \(folder.path)/screen.jsonl") }
        let p = Progress(total: samples.count - screen.results.count, label: "samples")
        try screen.run(samples, batchSize: batchSize) { done, _, _ in p.update(done) }

        let traits = vectors.map(\.trait)
        var flagged = Set<Int>()
        var lines = ["index," + traits.flatMap { ["\($0)_data", "\($0)_own", "\($0)_difference", "\($0)_flagged"] }.joined(separator: ",")]
        var flags: [String: Set<Int>] = [:]
        for t in traits {
            let ranked = samples.indices.sorted { (screen.results[$0]?.difference[t] ?? 0) > (screen.results[$1]?.difference[t] ?? 0) }
            let chosen: [Int]
            if let above = flagAbove { chosen = ranked.filter { (screen.results[$0]?.difference[t] ?? 0) > above } }
            else { chosen = Array(ranked.prefix(DataScreen.flagCount(of: samples.count, fraction: flagTop))) }
            flags[t] = Set(chosen)
            flagged.formUnion(chosen)
            let top = ranked.prefix(3).map { i in "#\(i) \(String(format: "%+.2f", screen.results[i]?.difference[t] ?? 0))" }.joined(separator: ", ")
            let mean = samples.indices.map { screen.results[$0]?.difference[t] ?? 0 }.reduce(0, +) / Double(samples.count)
            print("\(t): mean difference \(String(format: "%+.3f", mean)); highest \(top); \(chosen.count) flagged")
        }
        for i in samples.indices {
            let r = screen.results[i]
            lines.append("\(i)," + traits.flatMap { t in
                [r?.dataProjection[t], r?.ownProjection[t], r?.difference[t]].map { $0.map { String(format: "%.5f", $0) } ?? "" } + [String(flags[t]?.contains(i) ?? false)]
            }.joined(separator: ","))
        }
        try (lines.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("screen.csv"), atomically: true, encoding: .utf8)
        let flaggedLines = flagged.sorted().map { samples[$0].line }
        try (flaggedLines.joined(separator: "\n") + (flaggedLines.isEmpty ? "" : "\n"))
            .write(to: folder.appendingPathComponent("flagged.jsonl"), atomically: true, encoding: .utf8)
        print("wrote \(folder.path)/screen.csv, flagged.jsonl (\(flagged.count) of \(samples.count) samples), screen.jsonl")
    }
}
