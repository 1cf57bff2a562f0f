import ArgumentParser
import Foundation
import PersonaResources
import Hummingbird
import PersonaCore
import PersonaHub
import PersonaModels
import PersonaRuns
import PersonaServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the dashboard, the run API, live monitored generation and an OpenAI-compatible API.",
        discussion: """
        With no arguments it opens on the bundled example runs (made with stories260K). Give --model and --vectors \
        for live generation with trait curves and steering. Runs are kept in SQLite under --runs.
        """)

    @Option(help: "Address to bind (127.0.0.1 keeps it on this machine).") var host: String = "127.0.0.1"
    @Option(help: "Port.") var port: Int = 8000
    @Option(help: "A Hugging Face model folder, a .gguf file or a Hub id (org/name[@rev]) for live generation.") var model: String?
    @Option(help: "Trait vector file or folder (needed with --model for trait scores).") var vectors: String?
    @OptionGroup var precisionOption: PrecisionOption
    @Option(help: "Folder for the run database (runs.sqlite).") var runs: String = "~/.persona"
    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer KEY' on the API (default: $PERSONA_API_KEY).")
    var apiKey: String?
    @Flag(name: .customLong("insecure-no-auth"), help: "Allow a non-loopback --host without an API key.") var insecureNoAuth = false
    @Flag(name: .customLong("no-examples"), help: "Do not add the bundled example runs to an empty store.") var noExamples = false
    @Option(name: .customLong("steer"), help: "Steering for every /v1 request that gives none of its own (a benchmark harness that cannot send 'persona'): trait:coef[@layer][:all|prompt|response], trait:ablate or trait:auto; repeatable.")
    var steer: [String] = []
    @Option(name: .customLong("max-concurrent"), help: "Generations running at once, batched into shared forward passes (queue behind them, 429 past the queue).")
    var maxConcurrent: Int = 4

    func validate() throws {
        if !(1...65535).contains(port) { throw ValidationError("--port must be in 1...65535") }
        if vectors != nil && model == nil { throw ValidationError("--vectors needs --model") }
        if maxConcurrent < 1 { throw ValidationError("--max-concurrent must be >= 1") }
    }

    func run() async throws {
        let key = apiKey ?? ProcessInfo.processInfo.environment["PERSONA_API_KEY"]
        var config = ServerConfig(host: host, port: port, apiKey: key, maxConcurrentGenerations: maxConcurrent)
        if config.isExposed && key == nil {
            if !insecureNoAuth {
                throw ValidationError("--host \(host) exposes the server beyond this machine: give --api-key (or PERSONA_API_KEY), or --insecure-no-auth to accept the risk")
            }
            note("warning: serving on \(host) without an API key: anyone who can reach this port can use the model")
        }
        config.maxTokensPerRequest = 4096

        // A taken port stops the command before --runs is even created.
        try PortCheck.requireFree(host: host, port: port)
        let dir = URL(fileURLWithPath: (runs as NSString).expandingTildeInPath)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw ValidationError("--runs: cannot create \(dir.path): \(OutputFile.reason(error))")
        }
        try OutputFile.checkFolderWritable(dir, option: "--runs")   // SQLite would only say "unable to open database file"
        // The model and vectors first: a bad file stops the command before the store is made or filled.
        var backend: EngineBackend? = nil
        if let model {
            let loaded = try ModelLoader.load(path: ModelReference.resolve(model).path)
            precisionOption.apply(to: loaded.model)
            let vs = try vectors.map { try VectorFiles.load(URL(fileURLWithPath: $0), numLayers: loaded.config.numLayers) } ?? []
            VectorFiles.otherModelNotes(vs, model: loaded.name).forEach(note)
            let b = try EngineBackend(loaded: loaded, vectors: vs, maxBatch: maxConcurrent)
            backend = b
            note("model \(loaded.name) (\(loaded.config.architecture), \(loaded.config.numLayers) layers); traits: \(TraitSelection.available(vs))")
            if !steer.isEmpty {
                let parsed: [(spec: SteeringSpec, api: APISteer)]
                do { parsed = try b.steering(parsing: steer) } catch let e as VectorError {
                    throw ValidationError(e.message.hasPrefix("--steer") ? e.message : "--steer: \(e.message)")
                }
                config.defaultSteer = parsed.map(\.api)
                note("/v1 requests without steering of their own are steered: " + parsed.map(\.spec.description).joined(separator: ", "))
            }
        } else if !steer.isEmpty {
            throw ValidationError("--steer needs --model (and --vectors holding the traits)")
        }
        let store = try SQLiteRunStore(path: dir.appendingPathComponent("runs.sqlite").path)
        if !noExamples, try await store.count() == 0 {
            let added = try await importExamples(into: store)
            note("added \(added) example runs to \(dir.path)/runs.sqlite")
        }
        let app = try await buildApplication(config, backend: backend, store: store)
        note("PersonaScope dashboard: http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(port)/")
        try await app.runService()
    }

    func importExamples(into store: some RunStore) async throws -> Int {
        guard let dir = ResourceLocator.folder(bundle: "PersonaScope_persona", subpath: "Examples",
                                               source: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Examples"))
        else { return 0 }
        let files = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
        var n = 0
        for f in files.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) where f.pathExtension == "json" {
            n += try await store.importFile(f).count
        }
        return n
    }
}
