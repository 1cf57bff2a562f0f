import ArgumentParser
import Foundation
import PersonaFormats
import PersonaHub
import PersonaModels
import PersonaTensor

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the models in the Hugging Face cache: size on disk, architecture, dtype, and whether persona runs them.")

    @Flag(help: "One JSON object per model instead of a table.") var json = false

    func run() throws {
        let env = HubEnvironment.fromEnvironment()
        let cache = HubCache(root: env.cacheRoot)
        let rows = cache.listModels().map { describe($0, cache: cache) }
        if json {
            for r in rows {
                let obj: [String: Any] = ["id": r.id, "revision": r.revision, "size_bytes": r.size, "architecture": r.arch ?? NSNull(),
                                          "dtype": r.dtype ?? NSNull(), "runs": r.runs, "note": r.note, "path": r.path]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        if rows.isEmpty {
            note("no models in \(cache.root.path); fetch one with `persona pull org/name`")
            return
        }
        let header = ["MODEL", "REVISION", "SIZE", "ARCH", "DTYPE", "RUNS"]
        let table = rows.map { [$0.id, $0.revision, PullProgressBar.bytes($0.size), $0.arch ?? "?", $0.dtype ?? "?", $0.runs ? ($0.note.isEmpty ? "yes" : "yes (\($0.note))") : "no: " + $0.note] }
        let widths = header.indices.map { i in ([header] + table).map { $0[i].count }.max() ?? 0 }
        for row in [header] + table {
            print(row.enumerated().map { i, s in i == row.count - 1 ? s : s.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
    }

    struct Row {
        var id: String, revision: String, size: Int64, arch: String?, dtype: String?, runs: Bool, note: String, path: String
    }

    func describe(_ m: CachedModel, cache: HubCache) -> Row {
        let commit = m.primarySnapshot?.lastPathComponent ?? ""
        let refName = m.refs.filter { $0.value == commit }.keys.sorted { ($0 == "main" ? 0 : 1, $0) < ($1 == "main" ? 0 : 1, $1) }.first
        let revision = refName ?? String(commit.prefix(12))
        var row = Row(id: m.repo, revision: revision, size: m.sizeOnDisk, arch: nil, dtype: nil, runs: false, note: "", path: m.primarySnapshot?.path ?? m.folder.path)
        guard let snap = m.primarySnapshot else { row.note = "no snapshot"; return row }
        let s = HubCache.summarize(snapshot: snap)
        if let mt = s.modelType {
            row.arch = mt
            row.dtype = s.safetensorsDType ?? s.configDType
            if !ArchitectureRegistry.supportedModelTypes.contains(mt) { row.note = "model_type \(mt) not supported"; return row }
        } else if let g = s.ggufFiles.first {
            do {
                let file = try GGUFFile(url: g)
                row.arch = file.architecture
                // The type holding most of the weight bytes (GGUF mixes types, e.g. Q4_K with Q6_K output).
                var bytes: [DType: Int] = [:]
                for n in file.tensorNames { if let t = file.tensor(n) { bytes[t.dtype, default: 0] += t.byteCount } }
                row.dtype = bytes.max { $0.value < $1.value }?.key.rawValue.uppercased()
                if s.ggufFiles.count > 1 { row.arch = (row.arch ?? "?") + " (\(s.ggufFiles.count) GGUF files)" }
                guard let a = file.architecture, ArchitectureRegistry.supportedGGUFArchitectures.contains(a) else {
                    row.note = "GGUF architecture \(file.architecture ?? "unknown") not supported"
                    return row
                }
            } catch {
                row.note = "\(g.lastPathComponent): \(error)"
                return row
            }
        } else {
            // a config.json that does not say its model_type (or is not JSON) is not "no config.json"
            let hasConfig = FileManager.default.fileExists(atPath: snap.appendingPathComponent("config.json").path)
            row.note = hasConfig ? "config.json has no model_type (or is not a JSON object)" : "no config.json or .gguf"
            return row
        }
        if m.incompleteBytes > 0 { row.note = "a partial download is pending; persona pull \(m.repo) finishes it" }
        do {
            _ = try cache.resolve(HubID(repo: m.repo, revision: refName ?? commit))
            row.runs = true
        } catch let e as HubError where e.kind == .selection {
            row.runs = true   // several GGUFs: runs with --model org/name/FILE.gguf
            row.note = "pick a file: --model \(m.repo)/FILE.gguf"
        } catch {
            row.note = "incomplete snapshot (run persona pull \(m.repo))"
        }
        return row
    }
}
