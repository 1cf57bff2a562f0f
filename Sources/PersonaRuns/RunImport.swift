import Foundation

/// Reads run files: ours (one document or a list) and the per-token project's (a list of entries, or an
/// object of lists such as its layer_comparison.json).
public enum RunImport {
    /// Largest file `load(url:)` reads (a guard against pointing it at a model file by mistake).
    public static let maxFileBytes = 512 << 20

    /// Loads every run in a file. Throws a `RunError` naming the file and the problem.
    public static func load(url: URL) throws -> [RunDocument] {
        let name = url.lastPathComponent
        let attrs = try? FileManager.default.attributesOfItem(atPath: url.path)
        if let size = (attrs?[.size] as? NSNumber)?.intValue, size > maxFileBytes {
            throw RunError("\(name): \(size) bytes is larger than the \(maxFileBytes)-byte limit for run files")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw RunError("\(name): cannot read (\(error.localizedDescription))")
        }
        return try load(data: data, source: name)
    }

    /// Loads every run in a JSON buffer; `source` names it in errors and in imported runs' metadata.
    public static func load(data: Data, source: String = "input") throws -> [RunDocument] {
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            if let kind = binaryKind(data) { throw RunError("\(source): a \(kind) file, not a run JSON") }
            throw RunError("\(source): not valid JSON (\(describe(error)))")
        }
        var runs: [RunDocument] = []
        switch value {
        case .array(let items):
            for (i, item) in items.enumerated() {
                runs.append(try entry(item, source: source, path: "[\(i)]", group: nil, position: i))
            }
        case .object(let obj):
            if looksLikeRun(obj) {
                runs.append(try entry(value, source: source, path: "", group: nil, position: 0))
            } else if !obj.isEmpty, obj.values.allSatisfy({ isListOfRuns($0) }) {
                // An object of lists: {"layer_16": [entries], ...}; empty lists are allowed.
                for key in obj.keys.sorted() {
                    guard case .array(let items)? = obj[key] else { continue }
                    for (i, item) in items.enumerated() {
                        runs.append(try entry(item, source: source, path: "\(key)[\(i)]", group: key, position: i))
                    }
                }
            } else {
                let keys = obj.keys.sorted().prefix(8).joined(separator: ", ")
                throw RunError("\(source): not a run file: expected a run object (with tokens and trait_scores or projections), "
                    + "a list of runs, or an object of lists of runs; found an object with keys \(keys)")
            }
        default:
            throw RunError("\(source): not a run file: the top level is neither an object nor a list")
        }
        return runs
    }

    /// The binary formats users hand to run readers by mistake (a vector or model file for a run).
    static func binaryKind(_ data: Data) -> String? {
        if data.starts(with: Array("GGUF".utf8)) { return "GGUF (model or control vector)" }
        // safetensors: an 8-byte little-endian header length, then the JSON header
        if data.count > 9, data[data.startIndex + 8] == UInt8(ascii: "{"),
           data.prefix(8).reversed().reduce(0, { $0 << 8 | UInt64($1) }) < UInt64(data.count) {
            return "safetensors (trait vectors or weights)"
        }
        return nil
    }

    static func looksLikeRun(_ obj: [String: JSONValue]) -> Bool {
        obj["schema"] != nil || (obj["tokens"] != nil && (obj["trait_scores"] != nil || obj["projections"] != nil))
    }

    static func isListOfRuns(_ v: JSONValue) -> Bool {
        guard case .array(let items) = v else { return false }
        return items.allSatisfy { if case .object(let o) = $0 { return looksLikeRun(o) } else { return false } }
    }

    /// Converts one list element to a validated run.
    static func entry(_ item: JSONValue, source: String, path: String, group: String?, position: Int) throws -> RunDocument {
        let at = path.isEmpty ? source : "\(source) \(path)"
        guard case .object(let obj) = item else { throw RunError("\(at): a run must be a JSON object") }
        guard looksLikeRun(obj) else {
            throw RunError("\(at): not a run: needs \"tokens\" and \"trait_scores\" or \"projections\" (or a \"schema\")")
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]  // stable bytes for `stableID`
        let data = try enc.encode(item)
        var run: RunDocument
        do { run = try JSONDecoder().decode(RunDocument.self, from: data) } catch {
            throw RunError("\(at): \(describe(error))")
        }
        if obj["schema"] == nil {
            adoptPerTokenEntry(&run, obj: obj, source: source, group: group, canonical: data)
        }
        do { try run.validate() } catch let e as RunError { throw RunError("\(at): \(e.message)") }
        return run
    }

    /// Fills our fields from a per-token project entry: layer -> layers[trait], its alignment convention, a stable id.
    static func adoptPerTokenEntry(_ run: inout RunDocument, obj: [String: JSONValue], source: String, group: String?, canonical: Data) {
        run.schema = RunDocument.currentSchema
        if obj["id"] == nil { run.id = stableID(canonical, salt: "\(source)|\(group ?? "")") }
        let layer = obj["layer"]?.intValue ?? run.metadata["layer"]?.intValue
        if let layer, run.layers == nil {
            run.layers = Dictionary(uniqueKeysWithValues: run.traitScores.keys.map { ($0, layer) })
        }
        if let layer, run.hookPoints == nil, layer >= 1 {
            // Their layer number is the HF row they used; row l is the output of block l-1.
            run.hookPoints = Dictionary(uniqueKeysWithValues: run.traitScores.keys.map { ($0, "blocks.\(layer - 1).hook_resid_post") })
        }
        if let layer { run.metadata["layer"] = run.metadata["layer"] ?? .number(Double(layer)) }
        run.metadata["convention"] = .string(RunDocument.importedConvention)
        run.metadata["source"] = .string(group.map { "trait-interp:\(source):\($0)" } ?? "trait-interp:\(source)")
        if let group { run.metadata["group"] = .string(group) }
    }

    /// A UUID-shaped id derived from the entry's bytes (FNV-1a, 2 x 64 bits), so importing a file twice gives the same ids.
    static func stableID(_ data: Data, salt: String) -> String {
        var h1: UInt64 = 0xcbf2_9ce4_8422_2325, h2: UInt64 = 0x8422_2325_cbf2_9ce4
        let prime: UInt64 = 0x0000_0100_0000_01b3
        for b in Array(salt.utf8) + [0] + Array(data) {
            h1 = (h1 ^ UInt64(b)) &* prime
            h2 = (h2 ^ UInt64(b ^ 0x5a)) &* prime
        }
        var bytes: [UInt8] = []
        for h in [h1, h2] { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((h >> UInt64(s)) & 0xff)) } }
        bytes[6] = (bytes[6] & 0x0f) | 0x80  // version 8: custom
        bytes[8] = (bytes[8] & 0x3f) | 0x80  // RFC 4122 variant
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    /// Short human description of a decoding error, with the coding path.
    static func describe(_ error: Error) -> String {
        func path(_ p: [CodingKey]) -> String {
            p.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case DecodingError.typeMismatch(let t, let c): return "\(path(c.codingPath)): expected \(t)"
        case DecodingError.valueNotFound(let t, let c): return "\(path(c.codingPath)): missing \(t)"
        case DecodingError.keyNotFound(let k, let c): return "\(path(c.codingPath + [k])): missing"
        case DecodingError.dataCorrupted(let c):
            let p = path(c.codingPath)
            return p.isEmpty ? c.debugDescription : "\(p): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}
