import Foundation
import PersonaFormats
import PersonaModels
import PersonaTensor

/// Reading and writing trait-vector files (see docs/vector-format.md).
///
/// Three layouts are understood; all are mapped onto `TraitVector.rows`, the Hugging Face hidden-state
/// row convention (row 0 = embeddings, row l = output of block l-1 = `blocks.{l-1}.hook_resid_post`,
/// row L = after the final norm):
/// - our own safetensors format (`personascope.vectors/1`), read and written;
/// - persona_vectors `.pt` files (`torch.save` of one `[L+1, hidden]` tensor), read only: writing
///   Python pickles is deliberately not supported — export our format or a control vector instead;
/// - llama.cpp / repeng control-vector GGUF (`direction.N` = added to the output of block N = row N+1),
///   read and written.
///
/// Errors are `VectorError` (or `FormatError` from the container readers); both name the file.
public enum VectorFiles {
    /// Value of the "format" metadata key of our safetensors files.
    public static let formatName = "personascope.vectors/1"

    /// One line per model other than `model` that some of `vectors` say they were extracted from (their `model`
    /// field; vectors that name none are left out). A vector of another model with the same shape loads and scores
    /// without error, so the user is told; another quantization of the same model is fine, hence a note and not an error.
    public static func otherModelNotes(_ vectors: [TraitVector], model: String) -> [String] {
        var byModel: [String: [String]] = [:]
        for v in vectors {
            guard let m = v.model, !m.isEmpty, m.lowercased() != model.lowercased() else { continue }
            if !(byModel[m] ?? []).contains(v.trait) { byModel[m, default: []].append(v.trait) }
        }
        return byModel.keys.sorted().map { m in
            "note: \(byModel[m]!.joined(separator: ", ")) extracted from '\(m)', the model is '\(model)': fine for another "
                + "quantization of that model; another model's vectors measure nothing"
        }
    }

    /// Value of the "convention" metadata key: how rows map to places in the model.
    public static let conventionText = """
        Hugging Face hidden-state rows: each tensor is [L+1, hidden] for a model with L blocks. \
        Row 0 = token embeddings (hook_embed, after any embedding scale). \
        Row l for 1 <= l < L = output of block l-1 = blocks.{l-1}.hook_resid_post = blocks.{l}.hook_resid_pre \
        (persona_vectors 'layer l'; llama.cpp control vector direction.{l-1}). \
        Row L = output of the last block after the final norm (ln_final.hook_normalized). \
        Each row is mean(positive) - mean(negative), float32, not normalised; \
        a larger projection means more of the trait as positive_meaning states.
        """

    /// persona_vectors' three averages, recognised at the end of `.pt` file names.
    public static let personaVectorsMethods = ["response_avg", "prompt_avg", "prompt_last"]

    /// Largest block count accepted for a control vector (its rows are allocated from it).
    static let maxControlVectorLayers = 4096

    /// Extensions `load` picks up when given a directory.
    public static let vectorFileExtensions: Set<String> = ["safetensors", "pt", "gguf"]

    // MARK: - Layer mapping

    /// The hidden-state row a control vector's `direction.N` acts on: it is added to the output of block N, row N+1.
    public static func row(forControlDirection n: Int) -> Int { n + 1 }

    /// The control-vector index for hidden-state row `row` (row - 1); nil for row 0, the embeddings, which no block outputs.
    public static func controlDirection(forRow row: Int) -> Int? { row >= 1 ? row - 1 : nil }

    /// Rows exported to a control vector by default: 2...L-1 (direction.1 ... direction.L-2). Row 1 would be
    /// direction.0, which llama.cpp refuses; row L is after the final norm, not a block output.
    public static func defaultControlVectorRows(numLayers: Int) -> [Int] {
        numLayers >= 3 ? Array(2 ..< numLayers) : []
    }

    /// Trait and method from a persona_vectors file name: `evil_response_avg_diff.pt` -> ("evil", "response_avg").
    /// Names that do not end in a known method give (stem, "unknown").
    public static func personaVectorsName(_ fileName: String) -> (trait: String, method: String) {
        var stem = fileName
        if stem.lowercased().hasSuffix(".pt") { stem = String(stem.dropLast(3)) }
        if stem.hasSuffix("_diff") { stem = String(stem.dropLast(5)) }
        for m in personaVectorsMethods where stem.hasSuffix("_" + m) && stem.count > m.count + 1 {
            return (String(stem.dropLast(m.count + 1)), m)
        }
        return (stem, "unknown")
    }

    // MARK: - Load

    /// Loads trait vectors from: our safetensors format, a persona_vectors `.pt` file (tensor `[L+1, hidden]`;
    /// trait and method from the file name, e.g. `evil_response_avg_diff.pt` -> trait evil, method response_avg),
    /// a llama.cpp / repeng control-vector GGUF (`direction.N` -> row N+1, rows without a direction are zero),
    /// or a directory of such files (`.safetensors`, `.pt`, `.gguf`; other files are ignored).
    ///
    /// `numLayers` (the model's block count L) is checked against every vector when given. A control vector
    /// needs it when its depth cannot be told from the file: `controlvector.layer_count` is absent, or it holds
    /// the number of direction tensors (as llama.cpp and repeng write it) while the directions are not exactly
    /// 1...layer_count (that case is read as their full export, L = layer_count + 1).
    /// F16 / BF16 tensors are widened to F32; NaN or infinite values are an error naming trait and row.
    public static func load(_ url: URL, numLayers: Int? = nil) throws -> [TraitVector] {
        let path = url.path
        if let n = numLayers, n < 1 {
            throw VectorError("\(path): numLayers must be at least 1, got \(n)")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw VectorError("\(path): no such file or directory")
        }
        if isDir.boolValue { return try loadDirectory(url, numLayers: numLayers) }

        let head = try readPrefix(url, count: 16)
        if head.starts(with: Array("GGUF".utf8)) {
            return try loadControlVector(url, numLayers: numLayers)
        }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) {  // "PK\3\4": torch.save's zip archive
            return try loadTorch(url, numLayers: numLayers)
        }
        // safetensors: 8-byte little-endian header length, then a JSON object.
        if head.count >= 9 && head[8] == UInt8(ascii: "{") || url.pathExtension.lowercased() == "safetensors" {
            return try loadOurs(url, numLayers: numLayers)
        }
        if head.first == 0x80 || url.pathExtension.lowercased() == "pt" {
            throw VectorError("\(path): not a zip-format torch.save file (legacy pickle files from "
                + "_use_new_zipfile_serialization=False are not supported; re-save with a current torch.save)")
        }
        throw VectorError("\(path): unknown vector file format (not safetensors, a control-vector GGUF or a torch .pt archive)")
    }

    private static func readPrefix(_ url: URL, count: Int) throws -> [UInt8] {
        do {
            let h = try FileHandle(forReadingFrom: url)
            defer { try? h.close() }
            return Array(try h.read(upToCount: count) ?? Data())
        } catch {
            throw VectorError("\(url.path): cannot read (\(error.localizedDescription))")
        }
    }

    private static func loadDirectory(_ dir: URL, numLayers: Int?) throws -> [TraitVector] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        } catch {
            throw VectorError("\(dir.path): cannot list directory (\(error.localizedDescription))")
        }
        var out = [TraitVector]()
        var origin = [String: String]()
        var found = 0
        for name in names where !name.hasPrefix(".") {
            let file = dir.appendingPathComponent(name)
            guard vectorFileExtensions.contains(file.pathExtension.lowercased()) else { continue }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            found += 1
            for v in try load(file, numLayers: numLayers) {
                let key = "\(v.trait).\(v.method)"
                if let other = origin[key] {
                    throw VectorError("\(dir.path): trait '\(v.trait)' method '\(v.method)' is in both \(other) and \(name); keep one")
                }
                origin[key] = name
                out.append(v)
            }
        }
        if found == 0 {
            // A folder of run folders (`persona extract --trait a,b --out DIR`): each DIR/<trait>/vectors.safetensors.
            for name in names where !name.hasPrefix(".") {
                let file = dir.appendingPathComponent(name).appendingPathComponent("vectors.safetensors")
                guard FileManager.default.fileExists(atPath: file.path) else { continue }
                found += 1
                for v in try load(file, numLayers: numLayers) {
                    let key = "\(v.trait).\(v.method)"
                    if let other = origin[key] {
                        throw VectorError("\(dir.path): trait '\(v.trait)' method '\(v.method)' is in both \(other) and \(name); keep one")
                    }
                    origin[key] = name + "/vectors.safetensors"
                    out.append(v)
                }
            }
        }
        guard found > 0 else {
            throw VectorError("\(dir.path): directory holds no vector files (.safetensors, .pt, .gguf), nor run folders with vectors.safetensors")
        }
        return out
    }

    // MARK: Our format

    private static func loadOurs(_ url: URL, numLayers: Int?) throws -> [TraitVector] {
        let path = url.path
        let f = try SafetensorsFile(url: url)
        guard let fmt = f.metadata["format"] else {
            throw VectorError("\(path): not a PersonaScope vector file (no 'format' metadata; expected \"\(formatName)\")")
        }
        guard fmt == formatName else {
            if fmt.hasPrefix("personascope.vectors/") {
                throw VectorError("\(path): vector format version '\(fmt)' is not supported (this build reads \(formatName))")
            }
            throw VectorError("\(path): metadata 'format' is '\(fmt)', not \(formatName)")
        }
        if let (name, dt) = f.unsupportedTensors.min(by: { $0.key < $1.key }) {
            throw VectorError("\(path): tensor '\(name)' has dtype \(dt); vectors must be F32 (F16/BF16 are widened)")
        }
        guard !f.tensorNames.isEmpty else { throw VectorError("\(path): file holds no vectors") }

        var out = [TraitVector]()
        for name in f.tensorNames {
            guard let info = f.tensor(name) else { continue }
            guard let dot = name.lastIndex(of: "."), dot != name.startIndex, name.index(after: dot) != name.endIndex else {
                throw VectorError("\(path): tensor '\(name)' is not named <trait>.<method>")
            }
            let trait = String(name[..<dot])
            let method = String(name[name.index(after: dot)...])
            let label = "trait '\(trait)' (\(method))"
            let rows = try matrixRows(info, file: path, label: label)
            let L = rows.count - 1

            var v = TraitVector(trait: trait, method: method, rows: rows, source: "\(path) (PersonaScope vectors)")
            if let json = f.metadata[name] {
                let m = try metadataObject(json, file: path, key: name)
                func str(_ k: String) throws -> String? {
                    guard let x = m[k], !(x is NSNull) else { return nil }
                    guard let s = x as? String else { throw VectorError("\(path): metadata '\(name)': '\(k)' is not a string") }
                    return s
                }
                func int(_ k: String) throws -> Int? {
                    guard let x = m[k], !(x is NSNull) else { return nil }
                    guard let n = x as? NSNumber, n.doubleValue.isFinite, n.doubleValue == n.doubleValue.rounded(),
                          abs(n.doubleValue) < 9.0e15, let i = Int(exactly: n.doubleValue) else {
                        throw VectorError("\(path): metadata '\(name)': '\(k)' is not an integer")
                    }
                    return i
                }
                if let t = try str("trait"), t != trait {
                    throw VectorError("\(path): metadata '\(name)' says trait '\(t)' but the tensor is named '\(name)'")
                }
                if let mm = try str("method"), mm != method {
                    throw VectorError("\(path): metadata '\(name)' says method '\(mm)' but the tensor is named '\(name)'")
                }
                v.model = try str("model")
                v.positiveMeaning = try str("positive_meaning")
                if let s = try str("source") { v.source = s }
                v.samplesPositive = try int("samples_pos")
                v.samplesNegative = try int("samples_neg")
                for (k, n) in [("samples_pos", v.samplesPositive), ("samples_neg", v.samplesNegative)] {
                    if let n = n, n < 0 { throw VectorError("\(path): metadata '\(name)': '\(k)' is negative (\(n))") }
                }
                let row = try int("recommended_row")
                let hook = try str("recommended_hook")
                if let r = row {
                    guard r >= 0, r <= L else {
                        throw VectorError("\(path): \(label): recommended_row \(r) is outside 0...\(L)")
                    }
                    if let h = hook, let expect = HookPoint.hiddenStateRow(r, numLayers: L), h != expect.name {
                        throw VectorError("\(path): \(label): recommended_hook '\(h)' is not row \(r) (\(expect.name))")
                    }
                    v.recommendedRow = r
                } else if let h = hook {
                    guard let p = HookPoint(name: h), let r = p.hiddenStateRow(numLayers: L) else {
                        throw VectorError("\(path): \(label): recommended_hook '\(h)' is not a hidden-state row of a \(L)-block model")
                    }
                    v.recommendedRow = r
                }
                if let r = try int("recommended_steering_row") {
                    guard r >= 1, r <= L else {
                        throw VectorError("\(path): \(label): recommended_steering_row \(r) is outside 1...\(L)")
                    }
                    v.steeringRow = r
                }
                if let x = m["recommended_steering_coef"], !(x is NSNull) {
                    guard let n = x as? NSNumber, n.doubleValue.isFinite else {
                        throw VectorError("\(path): metadata '\(name)': 'recommended_steering_coef' is not a finite number")
                    }
                    v.steeringCoef = n.floatValue
                }
            }
            try checkDepth(v, numLayers: numLayers, file: path)
            out.append(v)
        }
        return out
    }

    private static func metadataObject(_ json: String, file: String, key: String) throws -> [String: Any] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let m = obj as? [String: Any] else {
            throw VectorError("\(file): metadata '\(key)' is not a JSON object")
        }
        return m
    }

    // MARK: persona_vectors .pt

    private static func loadTorch(_ url: URL, numLayers: Int?) throws -> [TraitVector] {
        let path = url.path
        let tensors = try TorchTensorReader.readTensors(url: url)
        let named = personaVectorsName(url.lastPathComponent)
        guard !tensors.isEmpty else { throw VectorError("\(path): torch file holds no tensors") }
        var out = [TraitVector]()
        for key in tensors.keys.sorted() {
            guard let t = tensors[key] else { continue }
            // A bare tensor (persona_vectors) takes the file's name; a dict names each vector by its key.
            let trait = key.isEmpty || tensors.count == 1 ? named.trait : key
            let label = "trait '\(trait)' (\(named.method))"
            let rows = try t.data.withUnsafeBytes { raw in
                try matrixRows(raw, dtype: t.dtype, shape: t.shape, file: path, label: label)
            }
            let v = TraitVector(trait: trait, method: named.method, rows: rows, source: "\(path) (persona_vectors .pt)")
            try checkDepth(v, numLayers: numLayers, file: path)
            out.append(v)
        }
        return out
    }

    // MARK: Control-vector GGUF

    private static func loadControlVector(_ url: URL, numLayers: Int?) throws -> [TraitVector] {
        let path = url.path
        let g = try GGUFFile(url: url)
        guard let arch = g.architecture else {
            throw VectorError("\(path): GGUF file has no general.architecture; a control vector has \"controlvector\"")
        }
        guard arch == "controlvector" else {
            throw VectorError("\(path): general.architecture is '\(arch)' (a model file?), a control vector has \"controlvector\"")
        }
        var dirs = [Int: [Float]]()
        var hidden: Int?
        for name in g.tensorNamesInFileOrder {
            let digits = name.hasPrefix("direction.") ? name.dropFirst("direction.".count) : ""
            guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }), let n = Int(digits) else {
                throw VectorError("\(path): tensor '\(name)' is not named direction.N (llama.cpp refuses such files)")
            }
            guard let info = g.tensor(name) else { continue }
            guard let w = info.shape.last, info.shape.dropLast().allSatisfy({ $0 == 1 }), w >= 1 else {
                throw VectorError("\(path): tensor '\(name)' has shape \(info.shape), expected one dimension [hidden]")
            }
            if let h = hidden, h != w {
                throw VectorError("\(path): tensor '\(name)' has \(w) values, earlier directions have \(h)")
            }
            hidden = w
            guard dirs[n] == nil else { throw VectorError("\(path): direction \(n) appears twice ('\(name)')") }
            let vals = try floats(info.bytes, dtype: info.dtype, count: w, file: path, label: "tensor '\(name)'")
            if let j = vals.firstIndex(where: { !$0.isFinite }) {
                throw VectorError("\(path): tensor '\(name)' holds \(vals[j]) at index \(j)")
            }
            dirs[n] = vals
        }
        guard let h = hidden, let maxN = dirs.keys.max() else {
            throw VectorError("\(path): control vector holds no direction.N tensors")
        }

        let L: Int
        if let nl = numLayers {
            L = nl
        } else if let raw = g.metadata["controlvector.layer_count"] {
            guard let lc = raw.int, lc >= 1 else {
                throw VectorError("\(path): controlvector.layer_count is not a positive integer; pass numLayers")
            }
            // llama.cpp's cvector-generator and repeng's full export write n_layers - 1 directions
            // (direction.1 ... direction.L-1) and layer_count = their count; our export writes layer_count = L.
            if lc <= 1 << 20, Set(dirs.keys) == Set(1 ... lc) {
                L = lc + 1
            } else {
                L = lc
            }
        } else {
            throw VectorError("\(path): controlvector.layer_count is missing; pass numLayers (the model's block count)")
        }
        // Rows are allocated from L: refuse depths no model has (a hostile layer_count must not exhaust memory).
        guard L <= maxControlVectorLayers else {
            throw VectorError("\(path): \(L) blocks is implausible for a model (limit \(maxControlVectorLayers))")
        }
        guard maxN <= L - 1 else {
            let why = numLayers != nil ? "the model has \(L) blocks"
                : "controlvector.layer_count gives \(L) blocks (llama.cpp and repeng store the number of directions there, not the model depth); pass numLayers"
            throw VectorError("\(path): direction.\(maxN) is the output of block \(maxN), but \(why)")
        }
        var rows = [[Float]](repeating: [Float](repeating: 0, count: h), count: L + 1)
        for (n, d) in dirs { rows[row(forControlDirection: n)] = d }

        let stem = url.deletingPathExtension().lastPathComponent
        let trait = g.metadata["personascope.trait"]?.string ?? stem
        let method = g.metadata["personascope.method"]?.string ?? "controlvector"
        var source = "\(path) (control vector: direction.N -> row N+1"
        if dirs[L - 1] != nil {
            source += "; row \(L) holds direction.\(L - 1), the last block's output before the final norm"
        }
        source += ")"
        var v = TraitVector(trait: trait, method: method, rows: rows, model: g.metadata["controlvector.model_hint"]?.string,
                            source: source)
        v.positiveMeaning = g.metadata["personascope.positive_meaning"]?.string
        v.isControlVector = true
        if let r = g.metadata["personascope.recommended_row"]?.int, r >= 1, r <= L, rows[r].contains(where: { $0 != 0 }) {
            v.recommendedRow = r
        }
        return [v]
    }

    // MARK: - Save

    /// Our format: safetensors with one F32 tensor `<trait>.<method>` of shape `[L+1, hidden]` per vector, and metadata:
    /// "format" = "personascope.vectors/1", "convention" (`conventionText`), and per vector a JSON string under the key
    /// "<trait>.<method>" with model, trait, method, samples_pos, samples_neg, norms, recommended_row, recommended_hook,
    /// positive_meaning, source. The file is written atomically (temporary file + rename).
    /// persona_vectors-style `.pt` export is not offered (it would mean writing Python pickles).
    public static func save(_ vectors: [TraitVector], to url: URL) throws {
        let path = url.path
        guard !vectors.isEmpty else { throw VectorError("\(path): no vectors to save") }
        var tensors = [(name: String, dtype: DType, shape: [Int], data: Data)]()
        var metadata = ["format": formatName, "convention": conventionText]
        var seen = Set<String>()
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        for v in vectors {
            guard !v.trait.isEmpty, !v.method.isEmpty, !v.method.contains(".") else {
                throw VectorError("\(path): trait '\(v.trait)' method '\(v.method)': both must be non-empty and the method may not contain '.'")
            }
            let name = "\(v.trait).\(v.method)"
            guard seen.insert(name).inserted else {
                throw VectorError("\(path): trait '\(v.trait)' method '\(v.method)' appears twice")
            }
            try validate(v, file: path)
            let L = v.numLayers
            if let r = v.recommendedRow, r < 0 || r > L {
                throw VectorError("\(path): trait '\(v.trait)' (\(v.method)): recommendedRow \(r) is outside 0...\(L)")
            }
            tensors.append((name, .f32, [v.rows.count, v.hiddenSize], floatData(v.rows.flatMap { $0 })))
            let record = VectorRecord(
                model: v.model, trait: v.trait, method: v.method, samples_pos: v.samplesPositive, samples_neg: v.samplesNegative,
                norms: v.rows.map { r in r.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }, recommended_row: v.recommendedRow,
                recommended_hook: v.recommendedRow.flatMap { HookPoint.hiddenStateRow($0, numLayers: L)?.name },
                recommended_steering_row: v.steeringRow, recommended_steering_coef: v.steeringCoef.map(Double.init),
                positive_meaning: v.positiveMeaning, source: v.source)
            metadata[name] = String(decoding: try enc.encode(record), as: UTF8.self)
        }
        try SafetensorsWriter.write(tensors, metadata: metadata, to: url)
    }

    /// The per-vector metadata record; nil fields are written as JSON null.
    private struct VectorRecord: Encodable {
        var model: String?
        var trait: String
        var method: String
        var samples_pos: Int?
        var samples_neg: Int?
        var norms: [Double]
        var recommended_row: Int?
        var recommended_hook: String?
        var recommended_steering_row: Int?
        var recommended_steering_coef: Double?
        var positive_meaning: String?
        var source: String?

        enum CodingKeys: String, CodingKey {
            case model, trait, method, samples_pos, samples_neg, norms, recommended_row, recommended_hook
            case recommended_steering_row, recommended_steering_coef, positive_meaning, source
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(model, forKey: .model)
            try c.encode(trait, forKey: .trait)
            try c.encode(method, forKey: .method)
            try c.encode(samples_pos, forKey: .samples_pos)
            try c.encode(samples_neg, forKey: .samples_neg)
            try c.encode(norms, forKey: .norms)
            try c.encode(recommended_row, forKey: .recommended_row)
            try c.encode(recommended_hook, forKey: .recommended_hook)
            try c.encode(recommended_steering_row, forKey: .recommended_steering_row)
            try c.encode(recommended_steering_coef, forKey: .recommended_steering_coef)
            try c.encode(positive_meaning, forKey: .positive_meaning)
            try c.encode(source, forKey: .source)
        }
    }

    // MARK: - Control-vector export

    /// Writes a llama.cpp control vector: `direction.(l-1)` = `coef * rows[l]` for each exported row l
    /// (default `defaultControlVectorRows`: 2...L-1), F32, with general.architecture = "controlvector",
    /// controlvector.model_hint, controlvector.layer_count = L (llama.cpp ignores it; `load` reads it back as L),
    /// and personascope.trait / personascope.method / personascope.coef. Row 0 (embeddings) and row 1
    /// (direction.0, refused by llama.cpp) cannot be exported; row L may be requested explicitly but is the
    /// post-norm state, while direction.(L-1) is added before the final norm. Atomic write.
    public static func exportControlVector(_ v: TraitVector, rows: [Int]? = nil, coef: Float = 1, modelHint: String,
                                           to url: URL) throws {
        let path = url.path
        try validate(v, file: path)
        let L = v.numLayers
        guard coef.isFinite else { throw VectorError("\(path): coef \(coef) is not finite") }
        let chosen = (rows ?? defaultControlVectorRows(numLayers: L)).sorted()
        guard !chosen.isEmpty else {
            throw VectorError("\(path): trait '\(v.trait)': no rows to export (a \(L)-block model has default rows 2...L-1, none here)")
        }
        for (i, r) in chosen.enumerated() {
            if i > 0 && chosen[i - 1] == r { throw VectorError("\(path): row \(r) requested twice") }
            if r == 0 { throw VectorError("\(path): row 0 is the embeddings, not a block output; no control-vector direction exists for it") }
            if r == 1 { throw VectorError("\(path): row 1 would be direction.0, which llama.cpp refuses to load") }
            if r < 0 || r > L { throw VectorError("\(path): row \(r) is outside 2...\(L) for a \(L)-block vector") }
        }
        var w = GGUFWriter()
        w.set("general.architecture", .string("controlvector"))
        w.set("controlvector.model_hint", .string(modelHint))
        w.set("controlvector.layer_count", .int32(Int32(clamping: L)))
        w.set("personascope.trait", .string(v.trait))
        w.set("personascope.method", .string(v.method))
        w.set("personascope.coef", .float32(coef))
        if let p = v.positiveMeaning { w.set("personascope.positive_meaning", .string(p)) }
        if let r = v.recommendedRow, chosen.contains(r) { w.set("personascope.recommended_row", .int32(Int32(r))) }
        for r in chosen {
            let scaled = v.rows[r].map { $0 * coef }
            if let j = scaled.firstIndex(where: { !$0.isFinite }) {
                throw VectorError("\(path): trait '\(v.trait)' row \(r) times coef \(coef) overflows at column \(j)")
            }
            guard let n = controlDirection(forRow: r) else { continue }
            try w.addTensor(name: "direction.\(n)", dtype: .f32, shape: [v.hiddenSize], data: floatData(scaled))
        }
        try w.write(to: url)
    }

    // MARK: - Helpers

    /// Rows must be L+1 >= 2 rows of one width >= 1, all finite.
    private static func validate(_ v: TraitVector, file: String) throws {
        let label = "trait '\(v.trait)' (\(v.method))"
        guard v.rows.count >= 2 else {
            throw VectorError("\(file): \(label) has \(v.rows.count) rows, needs L+1 >= 2")
        }
        let h = v.hiddenSize
        guard h >= 1 else { throw VectorError("\(file): \(label) has empty rows") }
        for (r, row) in v.rows.enumerated() {
            guard row.count == h else { throw VectorError("\(file): \(label) row \(r) has \(row.count) values, row 0 has \(h)") }
            if let j = row.firstIndex(where: { !$0.isFinite }) {
                throw VectorError("\(file): \(label) row \(r) holds \(row[j]) at column \(j)")
            }
        }
    }

    private static func checkDepth(_ v: TraitVector, numLayers: Int?, file: String) throws {
        if let nl = numLayers, v.rows.count != nl + 1 {
            throw VectorError("\(file): trait '\(v.trait)' (\(v.method)) has \(v.rows.count) rows; a \(nl)-block model needs \(nl + 1)")
        }
    }

    private static func matrixRows(_ info: TensorInfo, file: String, label: String) throws -> [[Float]] {
        try matrixRows(info.bytes, dtype: info.dtype, shape: info.shape, file: file, label: label)
    }

    /// A `[L+1, hidden]` tensor as finite F32 rows.
    private static func matrixRows(_ raw: UnsafeRawBufferPointer, dtype: DType, shape: [Int], file: String,
                                   label: String) throws -> [[Float]] {
        guard shape.count == 2, shape[0] >= 2, shape[1] >= 1 else {
            throw VectorError("\(file): \(label) has shape \(shape), expected [L+1, hidden] with L >= 1")
        }
        let (count, o) = shape[0].multipliedReportingOverflow(by: shape[1])
        guard !o else { throw VectorError("\(file): \(label) shape \(shape) overflows") }
        let flat = try floats(raw, dtype: dtype, count: count, file: file, label: label)
        let h = shape[1]
        var rows = [[Float]]()
        rows.reserveCapacity(shape[0])
        for r in 0 ..< shape[0] {
            let row = Array(flat[(r * h) ..< ((r + 1) * h)])
            if let j = row.firstIndex(where: { !$0.isFinite }) {
                throw VectorError("\(file): \(label) row \(r) holds \(row[j]) at column \(j)")
            }
            rows.append(row)
        }
        return rows
    }

    /// Little-endian F32 / F16 / BF16 values widened to Float (by the C kernels' conversions).
    private static func floats(_ raw: UnsafeRawBufferPointer, dtype: DType, count: Int, file: String, label: String) throws -> [Float] {
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw VectorError("\(file): \(label) is \(dtype.rawValue); vectors must be F32 (F16 and BF16 are widened)")
        }
        guard let out = dtype.floats(raw, count: count) else {
            let (need, o) = count.multipliedReportingOverflow(by: dtype.blockBytes)
            throw VectorError("\(file): \(label) has \(raw.count) bytes, \(count) \(dtype.rawValue) values need \(o ? "more" : String(need))")
        }
        return out
    }

    private static func floatData(_ xs: [Float]) -> Data {
        var d = Data(capacity: xs.count * 4)
        for x in xs { withUnsafeBytes(of: x.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }
}
