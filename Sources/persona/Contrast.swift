import ArgumentParser
import Foundation
import PersonaCore
import PersonaModels

struct Contrast: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a trait vector from two text files (one text per line): mean states of positive minus negative.",
        discussion: """
        No generation and no judge: each text is run once and the mean of its token states (after the first token) \
        is one sample. The last --holdout fraction of each file is kept out of the vector and used for the layer report \
        (AUROC and Cohen's d of held-out projections per row); the best row is stored as the recommended row.
        """)

    @OptionGroup var modelOption: ModelOption
    @Option(help: "Texts that show the trait, one per line.") var positive: String
    @Option(help: "Texts that show its opposite, one per line.") var negative: String
    @Option(help: "Trait name.") var trait: String
    @Option(help: "What a positive projection means.") var meaning: String?
    @Option(help: "Fraction of each file held out for the layer report.") var holdout: Double = 0.25
    @Option(help: "Output vector file (.safetensors).") var out: String
    @Option(name: .customLong("report"), help: "Also write the layer report as JSON here.") var reportPath: String?

    func validate() throws {
        if !(holdout >= 0 && holdout < 1) { throw ValidationError("--holdout must be in [0, 1)") }
        if reportPath != nil && holdout == 0 { throw ValidationError("--report needs held-out texts: a --holdout above 0") }
        // the same rule as a trait file's name: vector folders and extract's output name files after traits
        if let p = TraitDefinition.nameProblem(trait) { throw ValidationError("--trait \"\(trait.prefix(60))\" \(p)") }
    }

    static func lines(_ path: String) throws -> [String] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("cannot read \(path): \(error.localizedDescription)")
        }
        let l = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if l.count < 2 { throw ValidationError("\(path): need at least 2 texts, found \(l.count)") }
        return l
    }

    func run() throws {
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        let pos = try Self.lines(positive), neg = try Self.lines(negative)
        func split(_ x: [String]) -> ([String], [String]) {
            let k = holdout > 0 ? max(1, Int((Double(x.count) * holdout).rounded())) : 0
            return (Array(x.dropLast(k)), Array(x.suffix(k)))
        }
        let (posTrain, posTest) = split(pos), (negTrain, negTest) = split(neg)
        var sums = ActivationSums(numRows: loaded.config.numLayers + 1, hiddenSize: loaded.config.hiddenSize)
        let progress = Progress(total: posTrain.count + negTrain.count, label: "texts")
        try TextContrast.accumulate(loaded, texts: posTrain, positive: true, into: &sums) { _ in progress.step() }
        try TextContrast.accumulate(loaded, texts: negTrain, positive: false, into: &sums) { _ in progress.step() }
        var v = try sums.vector(trait: trait, method: .responseAvg,
                                model: loaded.name, positiveMeaning: meaning)
        v.source = "persona contrast: \(positive) vs \(negative)"
        var report: [TextContrast.RowReport]? = nil
        if !posTest.isEmpty && !negTest.isEmpty {
            let rows = try TextContrast.report(loaded, vector: v, positive: posTest, negative: negTest)
            v.recommendedRow = TextContrast.recommendedRow(rows, numLayers: loaded.config.numLayers)
            print("held-out texts: \(posTest.count) positive, \(negTest.count) negative")
            if posTest.count < 2 || negTest.count < 2 {
                note("Cohen's d needs 2 held-out texts a side (n/a below), and an AUROC of 1 vs 1 texts is 0 or 1: give more texts or a larger --holdout for a report to choose the row by")
            }
            print("row  hook point                        AUROC   Cohen's d    ||v||")
            for r in rows {
                let mark = r.row == v.recommendedRow ? "  <- recommended" : ""
                let hook = r.hookPoint.padding(toLength: 32, withPad: " ", startingAt: 0)
                let d = r.cohensD.isFinite ? String(format: "%9.3f", r.cohensD) : "      n/a"
                print(String(format: "%3d  ", r.row) + hook + String(format: " %6.3f  ", r.auroc) + d + String(format: "  %8.3f", r.norm) + mark)
            }
            report = rows
        } else {
            v.recommendedRow = max(1, loaded.config.numLayers / 3)
        }
        // the vector first: a report that cannot be written must not cost it
        try VectorFiles.save([v], to: URL(fileURLWithPath: out))
        if let reportPath, let report {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try enc.encode(report).write(to: URL(fileURLWithPath: reportPath), options: .atomic)
        }
        fflush(stdout)
        note("wrote \(trait) (\(posTrain.count) vs \(negTrain.count) texts, recommended row \(v.recommendedRow!)) to \(out)")
    }
}
