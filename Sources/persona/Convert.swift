import ArgumentParser
import Foundation
import PersonaCore
import PersonaFormats
import PersonaModels
import PersonaRuns
import PersonaTokenizers

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert runs, trait vectors and model weights between formats.",
        discussion: """
        Runs: a per-token-project result JSON (or ours) -> our run documents (--to runs), back to the \
        per-token project's format (--to pertoken), or CSV (--to csv).

        Vectors: persona_vectors .pt, a control-vector .gguf or ours -> ours (--to vectors), or a llama.cpp \
        control vector (--to control-vector).

        Models: a model folder or .gguf -> GGUF with llama.cpp tensor names (--to gguf), weights in their stored \
        type, or with --quantize TYPE quantised as llama-quantize writes them without an importance matrix \
        (--pure: every matrix in TYPE's base type).
        """)

    @Argument(help: "Input file or folder.") var input: String
    @Option(help: "Output file.") var out: String
    @Option(help: "runs | pertoken | csv | vectors | control-vector | gguf (default: from the input).") var to: String?
    @Option(name: .customLong("num-layers"), help: "Model depth L, for vector files that do not say it.") var numLayers: Int?
    @Option(name: .customLong("model-hint"), help: "controlvector.model_hint for --to control-vector.") var modelHint: String = "llama"
    @Option(parsing: .unconditional, help: "Coefficient folded into a control vector (may be negative: --coef -2).") var coef: Float = 1
    @Option(help: "HF rows to export as control-vector directions, e.g. 2,5,10-20 (default 2...L-1).") var rows: String?
    @Option(help: "--to control-vector: the trait to export, trait or trait@method (default: the file's only trait, its response_avg).")
    var trait: String?
    @Option(help: "--to gguf: quantise the weight matrices as llama-quantize does: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL or IQ4_XS; F32, F16 or BF16 converts them instead.")
    var quantize: String?
    @Flag(help: "--quantize: every weight matrix in TYPE, also the output head (llama-quantize --pure).")
    var pure = false

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
                // rows and ranges as `evaluate --rows` takes them (2,5,10-20), checked here so the error names --rows
                let L = chosen.numLayers
                let rowList = try rows.map { s -> [Int] in
                    let out = try parseRowList(s)
                    for r in out where !(2...max(2, L)).contains(r) {
                        throw ValidationError("--rows: row \(r) is outside 2...\(L) (a control vector has directions for the outputs of blocks 1 to \(L - 1), HF rows 2 to \(L))")
                    }
                    return out
                }
                try VectorFiles.exportControlVector(chosen, rows: rowList, coef: coef, modelHint: modelHint, to: output)
                note("wrote control vector \(chosen.trait) (\(chosen.method)) to \(out)")
            }
        case "gguf":
            if let quantize {
                guard let type = GGUFQuantizer.FileType(name: quantize) else {
                    throw ValidationError("--quantize must be one of \(GGUFQuantizer.FileType.allCases.map(\.rawValue).joined(separator: ", ")), not '\(quantize)'")
                }
                try quantizeModel(url, type: type, output: output)
                return
            }
            if pure { throw ValidationError("--pure goes with --quantize") }
            // re-exporting a loaded GGUF would drop its tokenizer, chat template and other metadata
            if url.pathExtension.lowercased() == "gguf" {
                throw ValidationError("\(input) is a GGUF already: --to gguf needs --quantize TYPE to change its weights (F32, F16 or BF16 to convert them unquantised)")
            }
            let net = try ModelLoader.loadNetwork(path: input)
            try writeFolderGGUF(net, url, to: output)
            note("wrote \(net.config.architecture) weights (\(net.config.numLayers) layers) to \(out)")
        default:
            throw ValidationError("--to must be runs, pertoken, csv, vectors, control-vector or gguf, not '\(target)'")
        }
    }

    /// A GGUF is quantised as it is (metadata and tokenizer kept); a model folder is quantised from the GGUF content
    /// its plain export would have (tokenizer and template embedded), with no intermediate file.
    func quantizeModel(_ url: URL, type: GGUFQuantizer.FileType, output: URL) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ValidationError("\(input): no such file or folder")
        }
        // a folder's content keeps its loaded model (the mapped weights) alive while it is read
        let source: GGUFSource = isDir.boolValue || url.pathExtension.lowercased() != "gguf"
            ? try folderContent(ModelLoader.loadNetwork(path: input), url) : try GGUFFile(url: url)
        let q = GGUFQuantizer(fileType: type, pure: pure)
        var progress: Progress?   // in MB of input weights, the total known once the quantiser has its plan
        let plans = try q.quantize(source, to: output) { done, total in
            if progress == nil { progress = Progress(total: max(1, total / 1_000_000), label: "MB quantised") }
            progress?.update(done / 1_000_000)
        }
        var counts: [String: Int] = [:]
        for p in plans { counts[p.to.rawValue.uppercased(), default: 0] += 1 }
        let mix = counts.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        note("wrote \(out): \(type.rawValue)\(pure ? " (pure)" : ""), \(plans.count) tensors (\(mix))")
    }

    /// A model folder's weights as GGUF with its tokenizer and chat template embedded when a GGUF can describe the
    /// tokenizer (byte-level BPE: GPT-2, Llama-3, Qwen2, SmolLM, ...); otherwise the file is still written, runs on
    /// token ids, and stderr says why the tokenizer was left out.
    func writeFolderGGUF(_ net: TransformerModel, _ url: URL, to file: URL) throws {
        try folderContent(net, url).write(to: file)
    }

    /// The GGUF content of a loaded folder (writeFolderGGUF), its tokenizer's and the export's caveats on stderr.
    func folderContent(_ net: TransformerModel, _ url: URL) throws -> GGUFContent {
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        let folder = isDir.boolValue ? url : url.deletingLastPathComponent()
        var tokenizer: [(String, GGUFValue)]?
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent("tokenizer.json").path) {
            do {
                let e = try GGUFTokenizerExport.export(directory: folder, vocabSize: net.config.vocabSize)
                tokenizer = e.metadata
                for c in e.caveats { note("warning: tokenizer embedded, but \(c)") }
            } catch { note("warning: tokenizer not embedded (the GGUF runs on token ids): \(error)") }
        } else {
            note("warning: \(folder.path) has no tokenizer.json: the GGUF has no tokenizer (it runs on token ids)")
        }
        let (content, caveats) = try net.ggufContent(name: folder.lastPathComponent, tokenizer: tokenizer, path: folder.path)
        for c in caveats { note("warning: \(c)") }
        return content
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
