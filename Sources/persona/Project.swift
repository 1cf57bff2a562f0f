import ArgumentParser
import Foundation
import PersonaCore
import PersonaModels

struct Project: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Project the prompt/answer rows of a CSV onto a trait vector (persona_vectors' cal_projection).",
        discussion: """
        Adds two columns, <trait>_proj_row<R>_response_avg (mean of (h . v)/||v|| over the answer tokens) and \
        <trait>_proj_row<R>_prompt_last (the last prompt token), at HF hidden-state row R (= output of block R-1). \
        Texts are tokenised without adding special tokens (the prompt column holds the chat template), BOS once.
        """)

    @OptionGroup var modelOption: ModelOption
    @Option(help: "Vector file or folder.") var vectors: String
    @Option(help: "CSV with prompt and answer columns.") var input: String
    @Option(help: "Trait name in the vector file.") var trait: String
    @Option(help: "Averaging method of the vector to use.") var method: String = "response_avg"
    @Option(help: "HF hidden-state row (default: the vector's recommended row).") var layer: Int?
    @Option(help: "Output CSV.") var out: String

    func run() throws {
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        let all = try VectorFiles.load(URL(fileURLWithPath: vectors), numLayers: loaded.config.numLayers)
        VectorFiles.otherModelNotes(all, model: loaded.name).forEach(note)
        let forTrait = all.filter { $0.trait == trait }
        guard let v = forTrait.first(where: { $0.method == method }) ?? (forTrait.count == 1 ? forTrait.first : nil) else {
            let have = all.map { "\($0.trait)/\($0.method)" }.joined(separator: ", ")
            throw ValidationError("no vector \(trait)/\(method) in \(vectors) (has: \(have))")
        }
        let row = layer ?? v.defaultRow
        guard let text = try? String(contentsOf: URL(fileURLWithPath: input), encoding: .utf8) else {
            throw ValidationError("\(input): cannot read as UTF-8 text")
        }
        var rows = CSV.parse(text)
        guard let header = rows.first else { throw ValidationError("\(input): empty CSV") }
        guard let pc = header.firstIndex(of: "prompt"), let ac = header.firstIndex(of: "answer") else {
            throw ValidationError("\(input): needs 'prompt' and 'answer' columns (has: \(header.joined(separator: ", ")))")
        }
        let cols = ["\(trait)_proj_row\(row)_response_avg", "\(trait)_proj_row\(row)_prompt_last"]
        rows[0] = header + cols
        let progress = Progress(total: rows.count - 1, label: "rows")
        for i in 1..<rows.count {
            let r = rows[i]
            var added = ["", ""]
            if pc < r.count, ac < r.count, !r[pc].isEmpty {
                do {
                    let p = try TextProjection.project(prompt: r[pc], answer: r[ac], loaded: loaded, vector: v, row: row)
                    added = [p.responseAvg.map { String($0) } ?? "", String(p.promptLast)]
                } catch {
                    note("\(input): row \(i): \(error)")
                }
            }
            rows[i] = r + added
            progress.step()
        }
        let body = rows.map { $0.map(CSV.escape).joined(separator: ",") }.joined(separator: "\n") + "\n"
        try Data(body.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
        note("wrote \(rows.count - 1) rows with \(cols.joined(separator: ", ")) to \(out)")
    }
}
