import ArgumentParser
import Foundation
import PersonaCore
import PersonaFormats
import PersonaModels
import PersonaRuns

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert runs, trait vectors and model weights between formats.",
        discussion: """
        runs:            per-token-project result JSON (or ours) -> our run documents (--to runs), or back (--to pertoken), or CSV
        vectors:         persona_vectors .pt / control-vector .gguf / ours -> ours (--to vectors) or a llama.cpp control vector (--to control-vector)
        model:           a model folder or .gguf -> GGUF with llama.cpp tensor names (--to gguf), weights in their stored type
        """)

    @Argument(help: "Input file or folder.") var input: String
    @Option(help: "Output file.") var out: String
    @Option(help: "runs | pertoken | csv | vectors | control-vector | gguf (default: from the input).") var to: String?
    @Option(name: .customLong("num-layers"), help: "Model depth L, for vector files that do not say it.") var numLayers: Int?
    @Option(name: .customLong("model-hint"), help: "controlvector.model_hint for --to control-vector.") var modelHint: String = "llama"
    @Option(help: "Coefficient folded into a control vector.") var coef: Float = 1
    @Option(help: "HF rows to export as control-vector directions (default 2...L-1).") var rows: String?
    @Option(help: "--to control-vector: the trait to export, trait or trait@method (default: the file's only trait, its response_avg).")
    var trait: String?

    func run() throws {
        let url = URL(fileURLWithPath: input)
        let target = to ?? Self.defaultTarget(url)
        let output = URL(fileURLWithPath: out)
        switch target {
        case "runs", "pertoken", "csv":
            let runs = try RunImport.load(url: url)
            let data: Data
            switch target {
            case "runs": data = runs.count == 1 ? try runs[0].jsonData() : try RunDocument.jsonData(runs)
            case "pertoken": data = try RunExport.perTokenProject(runs)
            default:
                guard runs.count == 1 else { throw ValidationError("--to csv takes a file with one run; \(input) has \(runs.count)") }
                data = Data(RunExport.csv(runs[0]).utf8)
            }
            try data.write(to: output, options: .atomic)
            note("wrote \(runs.count) run\(runs.count == 1 ? "" : "s") to \(out)")
        case "vectors", "control-vector":
            let vectors = try VectorFiles.load(url, numLayers: numLayers)
            if target == "vectors" {
                try VectorFiles.save(vectors, to: output)
                note("wrote \(vectors.count) vector\(vectors.count == 1 ? "" : "s") (\(vectors.map(\.trait).joined(separator: ", "))) to \(out)")
            } else {
                // one direction per file: the named trait (trait or trait@method), else the file's only trait's default method
                let chosen: TraitVector
                if let trait {
                    chosen = try TraitSelection.find(trait, in: vectors, option: "--trait")
                } else {
                    let traits = TraitSelection.defaults(vectors)
                    guard traits.count == 1 else {
                        throw ValidationError("a control vector holds one trait; \(input) has \(traits.count) (\(TraitSelection.available(vectors))): choose one with --trait")
                    }
                    chosen = traits[0]
                }
                let rowList = try rows.map { s in try s.split(separator: ",").map { p -> Int in
                    guard let r = Int(p.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--rows: '\(p)' is not a row number") }
                    return r
                } }
                try VectorFiles.exportControlVector(chosen, rows: rowList, coef: coef, modelHint: modelHint, to: output)
                note("wrote control vector \(chosen.trait) (\(chosen.method)) to \(out)")
            }
        case "gguf":
            let net = try ModelLoader.loadNetwork(path: input)
            try net.writeGGUF(to: output)
            note("wrote \(net.config.architecture) weights (\(net.config.numLayers) layers) to \(out)")
        default:
            throw ValidationError("--to must be runs, pertoken, csv, vectors, control-vector or gguf, not '\(target)'")
        }
    }

    static func defaultTarget(_ url: URL) -> String {
        switch url.pathExtension.lowercased() {
        case "json", "jsonl": return "runs"
        case "pt", "safetensors": return "vectors"
        case "gguf":
            if let g = try? GGUFFile(url: url), g.architecture == "controlvector" { return "vectors" }
            return "gguf"
        default: return "gguf"
        }
    }
}
