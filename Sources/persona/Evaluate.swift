import ArgumentParser
import Foundation
import PersonaCore
import PersonaModels

struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure whether a trait vector works: steering sweeps, and whether the projection predicts behaviour.",
        subcommands: [EvaluateSteering.self, EvaluateMonitor.self])
}

struct EvaluateSteering: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steering",
        abstract: "Sweep steering rows x coefficients on the trait's held-out eval questions and pick the setting.",
        discussion: """
        Every eval question is answered unsteered (the baseline) and under every (row, coefficient); one question's \
        settings run together as one batch, each sequence with its own steering. With a judge, each answer gets a \
        trait score and a coherence score (0-100, the trait's own judge prompt); the chosen setting is the largest \
        rise of the mean trait score over the baseline whose mean coherence stays >= --coherence-threshold. \
        Without a judge (--judge none) the sweep reports proxies instead, and says so: the rise of the mean \
        projection at the monitoring row, and the answer's perplexity under the unsteered model as a coherence \
        proxy (kept while <= --max-perplexity-ratio x the baseline's). Writes OUT/sweep.json, sweep.csv, \
        heatmap.svg; samples.jsonl and judgments.jsonl are written ahead, so a rerun resumes. --write-vector \
        stores the choice in the vector file as recommended_steering_row / _coef, which `--steer trait:auto` uses.
        """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var precisionOption: PrecisionOption
    @Option(help: "Trait vector file or folder (ours; the file is rewritten by --write-vector).") var vectors: String
    @Option(help: "The trait to sweep: trait or trait@method.") var trait: String
    @Option(name: .customLong("trait-file"), help: "Trait definition for the eval questions and judge prompt (default: the built-in trait of that name).")
    var traitFile: String?
    @Option(help: "HF hidden-state rows to steer at: 8,12,16, a range 6-24, or auto (7 rows spread over the middle 60%).")
    var rows: String = "auto"
    @Option(parsing: .unconditional, help: "Coefficients (the vector, unnormalised, times coef; negative ones too: --coefs -4,-2,2,4); 0 is always run as the baseline.")
    var coefs: String = "1,2,3,4,6"
    @Option(help: "Use only the first N eval questions.") var questions: Int?
    @Option(name: .customLong("max-tokens")) var maxTokens: Int = 64
    @Option(help: "Sampling temperature (0 = greedy; every setting of a question shares its seed).") var temperature: Float = 0
    @Option(help: "Base seed.") var seed: UInt64 = 0
    @OptionGroup var judgeOptions: JudgeOptions
    @Option(name: .customLong("coherence-threshold"), help: "Judged: mean coherence a setting must keep.") var coherenceThreshold: Double = 70
    @Option(name: .customLong("max-perplexity-ratio"), help: "No judge: mean perplexity a setting may reach, as a multiple of the baseline's.")
    var maxPerplexityRatio: Double = 2
    @Option(name: .customLong("max-repetition"), help: "No judge: largest share of repeated token 3-grams a setting's answers may have (perplexity misses loops).")
    var maxRepetition: Double = 0.3
    @Option(name: .customLong("batch-size"), help: "Settings of one question generated together (0: all of them, one batched pass per step).") var batchSize: Int = 0
    @Flag(name: .customLong("write-vector"), help: "Write the chosen row and coefficient into the vector file.") var writeVector = false
    @Option(help: "Shard i/N of the questions (default: a job array task's share, else all); shards share OUT.") var shard: String?
    @Option(help: "Output folder.") var out: String

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be >= 1") }
        if batchSize < 0 { throw ValidationError("--batch-size must be >= 0") }
        if let q = questions, q < 1 { throw ValidationError("--questions must be >= 1") }
        if !(0...100).contains(coherenceThreshold) { throw ValidationError("--coherence-threshold must be in 0...100") }
        if !(maxPerplexityRatio >= 1) { throw ValidationError("--max-perplexity-ratio must be >= 1") }
        if !(0...1).contains(maxRepetition) { throw ValidationError("--max-repetition must be in 0...1") }
        _ = try parsedCoefs()
    }

    func parsedCoefs() throws -> [Float] {
        var out: [Float] = []
        for part in coefs.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let c = Float(part), c.isFinite else { throw ValidationError("--coefs: '\(part)' is not a number") }
            if c != 0, !out.contains(c) { out.append(c) }
        }
        guard !out.isEmpty else { throw ValidationError("--coefs: give at least one non-zero coefficient") }
        return out
    }

    func parsedRows(numLayers L: Int) throws -> [Int] {
        if rows == "auto" {
            let lo = max(1, Int((Double(L) * 0.2).rounded())), hi = min(L, Int((Double(L) * 0.8).rounded()))
            return Array(Set((0..<7).map { lo + Int((Double(hi - lo) * Double($0) / 6).rounded()) })).sorted()
        }
        let out = try parseRowList(rows)
        for r in out where !(1...L).contains(r) { throw ValidationError("--rows: row \(r) is outside 1...\(L)") }
        return Array(Set(out)).sorted()
    }

    func run() async throws {
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        precisionOption.apply(to: loaded.model)
        let L = loaded.config.numLayers
        let all = try VectorFiles.load(URL(fileURLWithPath: vectors), numLayers: L)
        let v = try TraitSelection.find(trait, in: all, option: "--trait")
        var def = try traitFile.map { try TraitDefinition.load(URL(fileURLWithPath: $0)) } ?? BuiltinTraits.resolve(v.trait)
        if let q = questions { def.evalQuestions = Array(def.evalQuestions.prefix(q)) }
        guard !def.evalQuestions.isEmpty else { throw ValidationError("trait \(def.name) has no eval questions") }
        let settings = SweepSettings(trait: v.trait, method: v.method, model: loaded.name, rows: try parsedRows(numLayers: L),
                                     coefs: try parsedCoefs(), questions: def.evalQuestions, maxTokens: maxTokens,
                                     temperature: temperature, seed: seed, monitoringRow: v.defaultRow)
        let session = try MonitorSession(loaded: loaded, vectors: [v])
        let folder = URL(fileURLWithPath: out)
        let share = try workShare(shard)
        let sweep = try SteeringSweep(folder: folder, settings: settings, definition: def, session: session, traitName: v.trait, shard: share)
        note("sweep \(v.trait)@\(v.method): rows \(settings.rows.map(String.init).joined(separator: ",")), coefficients \(settings.coefs.map { String($0) }.joined(separator: ",")), \(settings.questions.count) questions = \(sweep.totalSamples) answers; effect measured at row \(settings.monitoringRow)")
        if sweep.ownDone > 0 { note("resuming: \(sweep.ownDone) of \(sweep.ownSamples) answers already in \(folder.path)") }
        let judge = try await judgeOptions.prepare(out: folder, extractionModel: loaded, pending: sweep.ownSamples - sweep.ownDone)
        let gp = Progress(total: sweep.ownSamples - sweep.ownDone, label: "answers")
        try sweep.generate(batchSize: batchSize, progress: { done, _, _ in gp.update(done) }, onTokens: { gp.addTokens($0) })

        if let judge {
            let jp = Progress(total: sweep.unjudged.count, label: "judged")
            try await sweep.judge(with: judge) { done, _, _ in jp.update(done) }
        } else {
            note("no judge: effects are projection shifts and coherence is a perplexity proxy (pass --judge openai|local for scores)")
        }
        if share.count > 1 {
            print("shard \(share): \(sweep.ownSamples) answers in \(folder.path); when every shard is done, run the same command with --shard 0/1 (or outside the array) to summarise")
            return
        }
        let summary = sweep.summary(coherenceThreshold: coherenceThreshold, maxPerplexityRatio: maxPerplexityRatio, maxRepetition: maxRepetition)
        if let u = summary.usableJudgments, !summary.judged {
            note("the judge gave both scores for only \(u) of \(sweep.samples.count) answers: reporting the proxies instead (a small model rarely answers with a number)")
        }
        try SweepReport.write(summary, to: folder)
        print(SweepReport.table(summary))
        if let c = summary.chosen {
            print("chosen: row \(c.row), coef \(c.coef) (effect \(String(format: "%+.2f", c.effect ?? 0)) \(summary.judged ? "trait points" : "projection")); wrote \(folder.path)/sweep.json, sweep.csv, heatmap.svg")
        } else {
            print("no setting with a positive effect passed the coherence bar; wrote \(folder.path)/sweep.json, sweep.csv, heatmap.svg")
        }
        if writeVector {
            guard let c = summary.chosen else { throw ValidationError("--write-vector: nothing was chosen, the vector file is unchanged") }
            let file = try SweepReport.fileHolding(v, in: URL(fileURLWithPath: vectors), numLayers: L)
            var vs = try VectorFiles.load(file, numLayers: L)
            for i in vs.indices where vs[i].trait == v.trait && vs[i].method == v.method {
                vs[i].steeringRow = c.row
                vs[i].steeringCoef = c.coef
            }
            try VectorFiles.save(vs, to: file)
            print("wrote recommended_steering_row \(c.row), recommended_steering_coef \(c.coef) for \(v.trait)@\(v.method) into \(file.path); use --steer \(v.trait):auto")
        }
    }
}

struct EvaluateMonitor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Check that the projection predicts the judged trait: Pearson and Spearman r per row, with bootstrap intervals.",
        discussion: """
        Every eval question is answered with no system prompt and under each of the trait's positive and negative \
        system prompts. For every HF row, the last prompt token's projection and the answer's mean projection are \
        correlated with the judged trait score of the answer (the paper reports r = 0.75-0.83 for the last prompt \
        token). Without a judge the target is the condition (positive 100, neutral 50, negative 0), a proxy for \
        separation that the report names. Writes OUT/monitor-eval.json, monitor-eval.csv (the monitoring row's \
        points) and scatter.svg; samples.jsonl and judgments.jsonl are written ahead, so a rerun resumes.
        """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var precisionOption: PrecisionOption
    @Option(help: "Trait vector file or folder.") var vectors: String
    @Option(help: "The trait: trait or trait@method.") var trait: String
    @Option(name: .customLong("trait-file"), help: "Trait definition (default: the built-in trait of that name).") var traitFile: String?
    @Option(help: "Use only the first N eval questions.") var questions: Int?
    @Option(help: "Use only the first N instruction pairs (each gives a positive and a negative system prompt).") var instructions: Int?
    @Option(name: .customLong("max-tokens")) var maxTokens: Int = 64
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0
    @Option(help: "Base seed.") var seed: UInt64 = 0
    @OptionGroup var judgeOptions: JudgeOptions
    @Option(help: "Bootstrap resamples for the 95% intervals.") var bootstrap: Int = 1000
    @Option(name: .customLong("batch-size"), help: "Conditions of one question generated together (0: all of them).") var batchSize: Int = 0
    @Option(help: "Shard i/N of the questions (default: a job array task's share, else all); shards share OUT.") var shard: String?
    @Option(help: "Output folder.") var out: String

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be >= 1") }
        if batchSize < 0 { throw ValidationError("--batch-size must be >= 0") }
        if bootstrap < 0 { throw ValidationError("--bootstrap must be >= 0") }
        if let q = questions, q < 1 { throw ValidationError("--questions must be >= 1") }
        if let i = instructions, i < 1 { throw ValidationError("--instructions must be >= 1") }
    }

    func run() async throws {
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        precisionOption.apply(to: loaded.model)
        let L = loaded.config.numLayers
        let v = try TraitSelection.find(trait, in: try VectorFiles.load(URL(fileURLWithPath: vectors), numLayers: L), option: "--trait")
        let def = try traitFile.map { try TraitDefinition.load(URL(fileURLWithPath: $0)) } ?? BuiltinTraits.resolve(v.trait)
        let qs = Array(def.evalQuestions.prefix(questions ?? Int.max))
        guard !qs.isEmpty else { throw ValidationError("trait \(def.name) has no eval questions") }
        let settings = MonitorValidationSettings(trait: v.trait, method: v.method, model: loaded.name, questions: qs, definition: def,
                                                 instructions: instructions, maxTokens: maxTokens, temperature: temperature,
                                                 seed: seed, monitoringRow: v.defaultRow)
        let folder = URL(fileURLWithPath: out)
        let share = try workShare(shard)
        let validation = try MonitorValidation(folder: folder, settings: settings, definition: def,
                                               session: try MonitorSession(loaded: loaded, vectors: [v]), vector: v, shard: share)
        note("\(v.trait)@\(v.method): \(qs.count) questions x \(settings.conditions.count) conditions = \(validation.total) answers; monitoring row \(settings.monitoringRow)")
        if validation.ownDone > 0 { note("resuming: \(validation.ownDone) of \(validation.own) answers already in \(folder.path)") }
        let judge = try await judgeOptions.prepare(out: folder, extractionModel: loaded, pending: validation.own - validation.ownDone)
        let gp = Progress(total: validation.own - validation.ownDone, label: "answers")
        try validation.generate(batchSize: batchSize, progress: { done, _, _ in gp.update(done) }, onTokens: { gp.addTokens($0) })
        if let judge {
            let jp = Progress(total: validation.unjudged.count, label: "judged")
            try await validation.judge(with: judge) { done, _, _ in jp.update(done) }
        } else {
            note("no judge: the target is the condition (positive 100, neutral 50, negative 0), a proxy for separation, not behaviour")
        }
        if share.count > 1 {
            print("shard \(share): \(validation.own) answers in \(folder.path); when every shard is done, run the same command with --shard 0/1 (or outside the array) to report")
            return
        }
        let report = validation.report(bootstrap: bootstrap, seed: seed)
        try MonitorEvalReport.write(report, to: folder)
        print(MonitorEvalReport.table(report))
        print("wrote \(folder.path)/monitor-eval.json, monitor-eval.csv, scatter.svg")
    }
}

/// monitor-eval.json (every row), monitor-eval.csv (the monitoring row's points), scatter.svg.
enum MonitorEvalReport {
    static func write(_ r: MonitorValidationReport, to folder: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try enc.encode(r).write(to: folder.appendingPathComponent("monitor-eval.json"), options: .atomic)
        var csv = "question,condition,score,last_prompt_projection,response_mean_projection\n"
        for p in r.points { csv += "\(p.question),\(p.condition),\(p.score),\(p.lastPrompt),\(p.responseMean)\n" }
        try csv.write(to: folder.appendingPathComponent("monitor-eval.csv"), atomically: true, encoding: .utf8)
        try svg(r).write(to: folder.appendingPathComponent("scatter.svg"), atomically: true, encoding: .utf8)
    }

    static func fmt(_ c: Correlation) -> String {
        guard let r = c.r else { return "   -" }
        let ci = c.low.flatMap { lo in c.high.map { String(format: " [%.2f, %.2f]", lo, $0) } } ?? ""
        return String(format: "%+.2f", r) + ci
    }

    static func table(_ r: MonitorValidationReport) -> String {
        var lines = ["\(r.trait): correlation with the \(r.judged ? "judged trait score" : "condition (proxy: no judge)"), n = \(r.n), 95% bootstrap intervals"]
        lines.append("row  last prompt token: Pearson / Spearman            answer mean: Pearson / Spearman")
        for row in r.rows where row.row > 0 {
            let mark = row.row == r.monitoringRow ? " <- monitoring row" : ""
            lines.append(String(format: "%3d  ", row.row) + fmt(row.lastPromptPearson) + "  " + fmt(row.lastPromptSpearman)
                         + "    " + fmt(row.responsePearson) + "  " + fmt(row.responseSpearman) + mark)
        }
        return lines.joined(separator: "\n")
    }

    /// The monitoring row: last prompt token projection (x) against the score (y), coloured by condition.
    static func svg(_ r: MonitorValidationReport) -> String {
        let w = 520.0, h = 360.0, l = 60.0, b = 40.0, t = 40.0, rt = 20.0
        let xs = r.points.map(\.lastPrompt), ys = r.points.map(\.score)
        let x0 = xs.min() ?? 0, x1 = max((xs.max() ?? 1), x0 + 1e-9), y0 = min(0, ys.min() ?? 0), y1 = max(100, ys.max() ?? 100)
        func px(_ x: Double) -> Double { l + (x - x0) / (x1 - x0) * (w - l - rt) }
        func py(_ y: Double) -> Double { h - b - (y - y0) / (y1 - y0) * (h - b - t) }
        let row = r.rows.first { $0.row == r.monitoringRow }
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<text x=\"\(l)\" y=\"18\" font-size=\"13\">\(r.trait), row \(r.monitoringRow): last prompt token projection vs \(r.judged ? "judged score" : "condition (proxy)")</text>",
                   "<text x=\"\(l)\" y=\"32\">Pearson \(row.map { fmt($0.lastPromptPearson) } ?? "-"), Spearman \(row.map { fmt($0.lastPromptSpearman) } ?? "-"), n = \(r.n)</text>",
                   "<line x1=\"\(l)\" y1=\"\(h - b)\" x2=\"\(w - rt)\" y2=\"\(h - b)\" stroke=\"black\"/>",
                   "<line x1=\"\(l)\" y1=\"\(t)\" x2=\"\(l)\" y2=\"\(h - b)\" stroke=\"black\"/>",
                   "<text x=\"\((l + w - rt) / 2)\" y=\"\(h - 8)\" text-anchor=\"middle\">projection (\(String(format: "%.2f", x0)) to \(String(format: "%.2f", x1)))</text>",
                   "<text x=\"14\" y=\"\((t + h - b) / 2)\" transform=\"rotate(-90 14 \((t + h - b) / 2))\" text-anchor=\"middle\">score</text>"]
        for p in r.points {
            let colour = p.condition.hasPrefix("pos") ? "#d62728" : p.condition.hasPrefix("neg") ? "#1f77b4" : "#7f7f7f"
            out.append("<circle cx=\"\(px(p.lastPrompt))\" cy=\"\(py(p.score))\" r=\"3.5\" fill=\"\(colour)\" fill-opacity=\"0.7\"><title>q\(p.question) \(p.condition): \(String(format: "%.2f", p.lastPrompt)), \(String(format: "%.1f", p.score))</title></circle>")
        }
        out.append("<text x=\"\(w - rt - 150)\" y=\"\(t + 10)\" fill=\"#d62728\">positive</text><text x=\"\(w - rt - 95)\" y=\"\(t + 10)\" fill=\"#7f7f7f\">neutral</text><text x=\"\(w - rt - 45)\" y=\"\(t + 10)\" fill=\"#1f77b4\">negative</text>")
        out.append("</svg>")
        return out.joined(separator: "\n")
    }
}

/// The files a sweep leaves: sweep.json (the summary), sweep.csv (one line per setting), heatmap.svg.
enum SweepReport {
    static func write(_ s: SweepSummary, to folder: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try enc.encode(s).write(to: folder.appendingPathComponent("sweep.json"), options: .atomic)
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "" }
        var csv = "row,coef,n,trait,coherence,projection,perplexity,repetition,effect,coherent\n"
        for c in [s.baseline] + s.cells {
            csv += "\(c.row),\(c.coef),\(c.n),\(f(c.trait)),\(f(c.coherence)),\(f(c.projection)),\(f(c.perplexity)),\(f(c.repetition)),\(f(c.effect)),\(c.coherent)\n"
        }
        try csv.write(to: folder.appendingPathComponent("sweep.csv"), atomically: true, encoding: .utf8)
        try svg(s).write(to: folder.appendingPathComponent("heatmap.svg"), atomically: true, encoding: .utf8)
    }

    /// Rows down, coefficients across: the effect per setting, its value printed, '*' on the chosen one and
    /// '(x)' where the coherence bar failed.
    static func table(_ s: SweepSummary) -> String {
        let coefs = Array(Set(s.cells.map(\.coef))).sorted(), rows = Array(Set(s.cells.map(\.row))).sorted()
        var lines = ["\(s.trait): effect per setting (\(s.judged ? "trait score - baseline" : "projection - baseline, proxy")); x: fails the coherence \(s.judged ? "bar" : "proxy"), *: chosen"]
        func pad(_ t: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - t.count)) + t }
        lines.append("row " + coefs.map { pad(String($0), 11) }.joined())
        for r in rows {
            var line = pad(String(r), 3) + " "
            for c in coefs {
                guard let cell = s.cells.first(where: { $0.row == r && $0.coef == c }) else { line += pad("", 11); continue }
                let mark = s.chosen == cell ? "*" : cell.coherent ? " " : "x"
                line += pad(String(format: "%+.2f", cell.effect ?? .nan), 10) + mark
            }
            lines.append(line)
        }
        let b = s.baseline
        lines.append("baseline: " + (s.judged ? "trait \(String(format: "%.1f", b.trait ?? .nan)), coherence \(String(format: "%.1f", b.coherence ?? .nan))"
                                               : "projection \(String(format: "%.3f", b.projection)), perplexity \(String(format: "%.2f", b.perplexity)), repetition \(String(format: "%.2f", b.repetition))"))
        return lines.joined(separator: "\n")
    }

    /// Two panels: the effect (diverging colour, 0 white) and coherence (judged score, or perplexity / baseline).
    static func svg(_ s: SweepSummary) -> String {
        let coefs = Array(Set(s.cells.map(\.coef))).sorted(), rows = Array(Set(s.cells.map(\.row))).sorted()
        let cw = 56.0, ch = 22.0, left = 50.0, top = 58.0, gap = 40.0
        let panelW = cw * Double(coefs.count)
        let width = max(720, left + 2 * panelW + gap + 20), height = top + ch * Double(rows.count) + 40
        let maxEffect = max(1e-9, s.cells.compactMap { $0.effect.map(abs) }.max() ?? 1)
        // literal: "<" with a combining mark after it is one Character, and a Character-level replace skips it
        func esc(_ t: String) -> String {
            t.replacingOccurrences(of: "&", with: "&amp;", options: .literal).replacingOccurrences(of: "<", with: "&lt;", options: .literal)
        }
        func diverging(_ x: Double) -> String {
            let t = max(-1, min(1, x / maxEffect))
            let (r, g, b) = t >= 0 ? (255.0, 255 * (1 - t), 255 * (1 - t)) : (255 * (1 + t), 255 * (1 + t), 255.0)
            return "rgb(\(Int(r)),\(Int(g)),\(Int(b)))"
        }
        func coherenceColour(_ c: SweepCellSummary) -> (String, String) {
            if s.judged {
                let v = max(0, min(100, c.coherence ?? 0)) / 100
                return ("rgb(\(Int(255 * (1 - v))),\(Int(200 * v + 55)),90)", String(format: "%.0f", c.coherence ?? .nan))
            }
            let ratio = c.perplexity / max(1e-9, s.baseline.perplexity)
            let loops = c.repetition > (s.maxRepetition ?? 1)
            let v = c.coherent ? max(0, min(0.5, (ratio - 1) / max(1e-9, (s.maxPerplexityRatio ?? 2) * 2 - 1))) : 0.85
            return ("rgb(\(Int(255 * v)),\(Int(200 * (1 - v) + 55)),90)", String(format: "%.2fx", ratio) + (loops ? " loop" : ""))
        }
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<text x=\"\(left)\" y=\"14\" font-size=\"13\">\(esc(s.trait)) on \(esc(s.model)): effect (\(s.judged ? "trait score" : "projection, proxy") - baseline) and \(s.judged ? "coherence" : "perplexity / baseline (proxy)")</text>",
                   "<text x=\"\(left)\" y=\"27\" fill=\"#666\">outlined: chosen; dashed: fails the coherence \(s.judged ? "bar" : "proxy (loop: repeated token 3-grams over the limit)")</text>"]
        for (p, title) in [(0, "effect"), (1, s.judged ? "coherence" : "perplexity ratio")] {
            let x0 = left + Double(p) * (panelW + gap)
            out.append("<text x=\"\(x0)\" y=\"48\" font-weight=\"bold\">\(title)</text>")
            for (j, c) in coefs.enumerated() {
                out.append("<text x=\"\(x0 + cw * (Double(j) + 0.5))\" y=\"\(top + ch * Double(rows.count) + 14)\" text-anchor=\"middle\">\(c)</text>")
            }
            for (i, r) in rows.enumerated() {
                out.append("<text x=\"\(x0 - 6)\" y=\"\(top + ch * (Double(i) + 0.7))\" text-anchor=\"end\">\(r)</text>")
                for (j, c) in coefs.enumerated() {
                    guard let cell = s.cells.first(where: { $0.row == r && $0.coef == c }) else { continue }
                    let (fill, label) = p == 0 ? (diverging(cell.effect ?? 0), String(format: "%+.2f", cell.effect ?? .nan)) : coherenceColour(cell)
                    let x = x0 + cw * Double(j), y = top + ch * Double(i)
                    let stroke = s.chosen == cell ? " stroke=\"black\" stroke-width=\"2.5\"" : cell.coherent ? "" : " stroke=\"#999\" stroke-dasharray=\"3,2\""
                    out.append("<g><title>row \(r), coef \(c): effect \(String(format: "%.3f", cell.effect ?? .nan)), perplexity \(String(format: "%.2f", cell.perplexity)), repetition \(String(format: "%.2f", cell.repetition)), n \(cell.n)</title><rect x=\"\(x)\" y=\"\(y)\" width=\"\(cw - 2)\" height=\"\(ch - 2)\" fill=\"\(fill)\"\(stroke)/><text x=\"\(x + cw / 2 - 1)\" y=\"\(y + ch * 0.68)\" text-anchor=\"middle\">\(label)</text></g>")
                }
            }
            out.append("<text x=\"\(x0 + panelW / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\">coefficient (rows down)</text>")
        }
        out.append("</svg>")
        return out.joined(separator: "\n")
    }

    /// The file among `url` (a file, or a folder of files / run folders) that holds `v`; only our format is rewritten.
    static func fileHolding(_ v: TraitVector, in url: URL, numLayers: Int) throws -> URL {
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        var candidates: [URL] = []
        if isDir.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
            candidates = names.map { url.appendingPathComponent($0) }.filter { $0.pathExtension == "safetensors" }
            candidates += names.map { url.appendingPathComponent($0).appendingPathComponent("vectors.safetensors") }
                .filter { FileManager.default.fileExists(atPath: $0.path) }
        } else {
            candidates = [url]
        }
        for f in candidates where f.pathExtension == "safetensors" {
            if let vs = try? VectorFiles.load(f, numLayers: numLayers), vs.contains(where: { $0.trait == v.trait && $0.method == v.method }) { return f }
        }
        throw ValidationError("--write-vector: no PersonaScope .safetensors file under \(url.path) holds \(v.trait)@\(v.method) (convert other formats first: persona convert)")
    }
}

/// `--rows` as `evaluate` and `convert --to control-vector` take it: rows and ranges, "2,5,10-20", in the order given
/// (each command checks the range its rows must fall in).
func parseRowList(_ text: String) throws -> [Int] {
    var out: [Int] = []
    for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
        // empty pieces kept, so "-3" and "5-" are refused rather than read as 3 and 5
        let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        if ends.count == 2, let a = ends[0], let b = ends[1], a <= b { out += Array(a...b) }
        else if ends.count == 1, let a = ends[0] { out.append(a) }
        else { throw ValidationError("--rows: '\(part)' is not a row or a range a-b") }
    }
    return out
}
