import Foundation
import Hummingbird
import PersonaRuns

/// /api routes: health, model, traits, runs, generation.
struct APIRoutes: Sendable {
    let config: ServerConfig
    let backend: (any GenerationBackend)?
    let store: any RunStore
    let limiter: GenerationLimiter

    func add(to router: Router<BasicRequestContext>) {
        router.get("/api/health") { _, _ in try await self.health() }
        router.get("/api/model") { _, _ in try self.model() }
        router.get("/api/traits") { _, _ in try jsonResponse(["traits": self.backend?.traits ?? []]) }
        router.get("/api/runs") { req, _ in try await self.listRuns(req) }
        router.post("/api/runs") { req, _ in try await self.importRuns(req) }
        router.get("/api/runs/:id") { _, ctx in try await self.getRun(ctx) }
        router.delete("/api/runs/:id") { _, ctx in try await self.deleteRun(ctx) }
        router.get("/api/runs/:id/export") { req, ctx in try await self.export(req, ctx) }
        router.post("/api/generate") { req, _ in try await self.generate(req) }
    }

    // MARK: info

    func health() async throws -> Response {
        let runs = try await store.count()
        return try jsonResponse(HealthBody(status: "ok", version: personaServerVersion, modelLoaded: backend != nil,
                                           model: backend?.modelInfo.id, runs: runs,
                                           activeGenerations: await limiter.active, queuedGenerations: await limiter.queued))
    }

    struct HealthBody: Encodable {
        var status: String, version: String, modelLoaded: Bool, model: String?, runs: Int, activeGenerations: Int, queuedGenerations: Int
        enum CodingKeys: String, CodingKey {
            case status, version, model, runs
            case modelLoaded = "model_loaded", activeGenerations = "active_generations", queuedGenerations = "queued_generations"
        }
    }

    func model() throws -> Response {
        guard let b = backend else { return try jsonResponse(["loaded": JSONValue.bool(false)]) }
        let m = b.modelInfo
        return try jsonResponse(JSONValue.object([
            "loaded": true, "id": .string(m.id), "architecture": .string(m.architecture), "layers": .number(Double(m.layers)),
            "hidden": .number(Double(m.hidden)), "context_length": .number(Double(m.contextLength)),
        ]))
    }

    // MARK: runs

    func listRuns(_ req: Request) async throws -> Response {
        let p = req.uri.queryParameters
        var q = RunQuery()
        if let t = p["q"].map(String.init), !t.isEmpty {
            guard t.count <= 1000 else { throw APIError.badRequest("q: longer than 1000 characters") }
            q.text = t
        }
        if let t = p["trait"].map(String.init), !t.isEmpty { q.trait = t }
        if let s = p["min_score"].map(String.init), !s.isEmpty {
            guard let v = Double(s), v.isFinite else { throw APIError.badRequest("min_score: \"\(s.prefix(40))\" is not a number") }
            q.minScore = v
        }
        if let s = p["limit"].map(String.init), !s.isEmpty {
            guard let v = Int(s), v >= 1, v <= config.maxPageSize else {
                throw APIError.badRequest("limit: \"\(s.prefix(40))\" must be an integer from 1 to \(config.maxPageSize)")
            }
            q.limit = v
        }
        if let s = p["offset"].map(String.init), !s.isEmpty {
            guard let v = Int(s), v >= 0 else { throw APIError.badRequest("offset: \"\(s.prefix(40))\" must be an integer >= 0") }
            q.offset = v
        }
        return try jsonResponse(try await store.search(q))
    }

    /// Run ids are ours (uuid) or imported (uuid-shaped); anything else cannot name a stored run.
    static func runID(_ ctx: BasicRequestContext) throws -> String {
        guard let id = ctx.parameters.get("id"), RunDocument.isValidID(id) else { throw APIError.badRequest("id: a run id is 1-200 ASCII letters, digits, '-', '_' or '.'") }
        return id
    }

    func loadRun(_ ctx: BasicRequestContext) async throws -> RunDocument {
        let id = try APIRoutes.runID(ctx)
        guard let run = try await store.run(id: id) else { throw APIError.notFound("no run with id \(id)") }
        return run
    }

    func getRun(_ ctx: BasicRequestContext) async throws -> Response {
        let run = try await loadRun(ctx)
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: try run.jsonData(sortedKeys: true, pretty: false))))
    }

    func deleteRun(_ ctx: BasicRequestContext) async throws -> Response {
        let id = try APIRoutes.runID(ctx)
        guard try await store.delete(id: id) else { throw APIError.notFound("no run with id \(id)") }
        return try jsonResponse(["deleted": id])
    }

    func export(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let format = req.uri.queryParameters["format"].map(String.init) ?? "json"
        guard ["json", "csv", "pertoken"].contains(format) else {
            throw APIError.badRequest("format: \"\(format.prefix(40))\" is not one of json, csv, pertoken")
        }
        let run = try await loadRun(ctx)
        let data: Data, type: String, ext: String
        switch format {
        case "csv": data = Data(RunExport.csv(run).utf8); type = "text/csv; charset=utf-8"; ext = "csv"
        case "pertoken": data = try RunExport.perTokenProject([run]); type = "application/json; charset=utf-8"; ext = "pertoken.json"
        default: data = try run.jsonData(sortedKeys: true); type = "application/json; charset=utf-8"; ext = "json"
        }
        // The id was checked to be [A-Za-z0-9._-], so it is safe inside the header.
        return Response(status: .ok, headers: [.contentType: type, .contentDisposition: "attachment; filename=\"run-\(run.id).\(ext)\""],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    func importRuns(_ req: Request) async throws -> Response {
        let body = try await readBody(req)
        let runs: [RunDocument]
        do { runs = try RunImport.load(data: body, source: "request body") } catch let e as RunError {
            throw APIError.badRequest(e.message)
        }
        guard !runs.isEmpty else { throw APIError.badRequest("request body: no runs in it") }
        try await store.save(runs)
        return try jsonResponse(ImportBody(ids: runs.map(\.id), count: runs.count), status: .created)
    }

    struct ImportBody: Encodable { var ids: [String]; var count: Int }

    func readBody(_ req: Request) async throws -> Data {
        do {
            let buf = try await req.body.collect(upTo: config.maxBodyBytes)
            return Data(buf.readableBytesView)
        } catch let e as HTTPResponseError where e.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "request body is larger than \(config.maxBodyBytes) bytes")
        }
    }

    func decodeJSON<T: Decodable>(_ type: T.Type, _ req: Request) async throws -> T {
        let data = try await readBody(req)
        do { return try JSONDecoder().decode(T.self, from: data) } catch let e as FieldError {
            throw APIError.badRequest(e.description)
        } catch {
            throw APIError.badRequest("malformed JSON request: \(RunImportErrorText.describe(error))")
        }
    }

    // MARK: generation

    /// Checks a request against the server's limits; throws 400 naming the parameter.
    func validate(_ r: GenerationRequest) throws {
        func bad(_ m: String) -> APIError { APIError.badRequest(m) }
        // 0 new tokens only scores the prompt (echo)
        let least = r.promptLogprobs == nil ? 1 : 0
        guard r.maxTokens >= least, r.maxTokens <= config.maxTokensPerRequest else {
            throw bad("max_tokens: \(r.maxTokens) must be from \(least) to \(config.maxTokensPerRequest)")
        }
        guard r.temperature.isFinite, r.temperature >= 0, r.temperature <= 10 else { throw bad("temperature: must be from 0 to 10") }
        if let p = r.topP { guard p.isFinite, p > 0, p <= 1 else { throw bad("top_p: must be in (0, 1]") } }
        if let k = r.topK { guard k >= 0 else { throw bad("top_k: must be >= 0") } }
        if let m = r.minP { guard m.isFinite, m >= 0, m <= 1 else { throw bad("min_p: must be from 0 to 1") } }
        if let t = r.topLogprobs { guard t >= 0, t <= 20 else { throw bad("top_logprobs: must be from 0 to 20") } }
        if let f = r.frequencyPenalty { guard f.isFinite, f >= -2, f <= 2 else { throw bad("frequency_penalty: must be from -2 to 2") } }
        if let f = r.presencePenalty { guard f.isFinite, f >= -2, f <= 2 else { throw bad("presence_penalty: must be from -2 to 2") } }
        let bias = try r.logitBiasIds()
        guard bias.count <= 300 else { throw bad("logit_bias: at most 300 tokens") }
        for (id, b) in bias.sorted(by: { $0.key < $1.key }) where !(b.isFinite && b >= -100 && b <= 100) {
            throw bad("logit_bias: the bias for token \(id) must be from -100 to 100")
        }
        if let s = r.stop {
            guard s.count <= 16 else { throw bad("stop: at most 16 sequences") }
            guard s.allSatisfy({ !$0.isEmpty && $0.count <= 200 }) else { throw bad("stop: each sequence must be 1-200 characters") }
        }
        if let m = r.messages {
            guard !m.isEmpty else { throw bad("messages: must not be empty") }
            let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]
            for (i, msg) in m.enumerated() where !roles.contains(msg.role) {
                throw bad("messages[\(i)].role: \"\(msg.role.prefix(40))\" is not one of system, developer, user, assistant, tool")
            }
        } else if let ids = r.promptIds {
            guard !ids.isEmpty else { throw bad("prompt: a token list must not be empty") }
            guard ids.count < backend?.modelInfo.contextLength ?? Int.max else {
                throw bad("prompt: \(ids.count) tokens; the model's context length is \(backend!.modelInfo.contextLength)")
            }
            if let i = ids.firstIndex(where: { $0 < 0 || $0 >= backend?.modelInfo.vocabSize ?? Int.max }) {
                throw bad("prompt: token id \(ids[i]) at index \(i) is outside the vocabulary (0..<\(backend?.modelInfo.vocabSize ?? 0))")
            }
        } else if r.prompt.isEmpty {
            throw bad("prompt: must not be empty (or give messages)")
        }
        var conditionTraits: [(index: Int, trait: String)] = []   // each `when`'s trait, parsed once
        for (i, s) in r.steer.enumerated() {
            guard !s.trait.isEmpty else { throw bad("steer[\(i)].trait: must not be empty") }
            // the vectors are Float: 1e308 is a finite Double but infinite once applied, and failed mid-stream
            guard Float(s.coef).isFinite else { throw bad("steer[\(i)].coef: must be a finite number (at most 3.4e38 in size)") }
            guard SteeringRecord.validPositions.contains(s.positions) else { throw bad("steer[\(i)].positions: must be all, prompt or response") }
            guard SteeringRecord.validModes.contains(s.mode) else { throw bad("steer[\(i)].mode: must be add or ablate") }
            if let l = s.layer { guard l >= 0 else { throw bad("steer[\(i)].layer: must be >= 0") } }
            if let w = s.when, !w.isEmpty {
                guard let c = SteeringRecord.parseCondition(w) else {
                    throw bad("steer[\(i)].when: \"\(w.prefix(60))\" is not trait>threshold or trait<threshold (e.g. evil>2.5)")
                }
                conditionTraits.append((i, c.trait))
            }
        }
        if let b = backend {
            let known = Set(b.traits.map(\.name))
            for t in (r.traits ?? []) + r.steer.map(\.trait) where !known.contains(t) {
                throw bad("unknown trait \"\(t.prefix(60))\"; loaded: \(known.sorted().joined(separator: ", "))")
            }
            // a hidden-state row is 0 (embeddings) to the layer count (the last block's output); checked here so
            // the client gets a 400 before the stream, not an error event naming the CLI's --steer
            let rows = b.modelInfo.layers
            for (i, s) in r.steer.enumerated() {
                if let l = s.layer, l > rows { throw bad("steer[\(i)].layer: row \(l) is out of range (0 to \(rows))") }
            }
            for (i, t) in conditionTraits where !known.contains(t) {
                throw bad("steer[\(i)].when: unknown trait \"\(t.prefix(60))\"; loaded: \(known.sorted().joined(separator: ", "))")
            }
        }
    }

    /// The backend, or 503 when no model is loaded.
    func requireBackend() throws -> any GenerationBackend {
        guard let b = backend else {
            throw APIError(.serviceUnavailable, "no model loaded: start the server with --model PATH to generate")
        }
        return b
    }

    /// A generation slot, or 429 with Retry-After when the queue is full.
    func acquireSlot() async throws -> GenerationLimiter.Slot {
        do { return try await limiter.acquire() } catch is GenerationLimiter.Busy {
            throw APIError(.tooManyRequests, "too many generations in progress; retry later",
                           headers: [.retryAfter: String(config.retryAfterSeconds)])
        }
    }

    /// Fills the analysis the dashboard shows (unless the backend did) and stores the run when asked.
    func finish(_ run: RunDocument, save: Bool) async throws -> RunDocument {
        var r = run
        if r.stats == nil || r.decisionPoints == nil || r.correlations == nil {
            let a = r.withAnalysis()
            r.stats = r.stats ?? a.stats
            r.decisionPoints = r.decisionPoints ?? a.decisionPoints
            r.correlations = r.correlations ?? a.correlations
        }
        if save { try await store.save(r) }
        return r
    }

    func generate(_ req: Request) async throws -> Response {
        let backend = try requireBackend()
        let gen = try await decodeJSON(GenerationRequest.self, req)
        try validate(gen)
        let slot = try await acquireSlot()
        let stream = backend.generate(gen)
        let body = ResponseBody { writer in
            defer { slot.release() }
            do {
                for try await event in stream {
                    switch event {
                    case .prompt: break   // /api/generate does not ask for it
                    case .token(let t):
                        try await writer.write(SSE.event("token", t))
                    case .done(let run, let reason):
                        let finished = try await self.finish(run, save: gen.save)
                        try await writer.write(SSE.event("done", DoneBody(runID: finished.id, saved: gen.save, finishReason: reason, run: finished)))
                    }
                }
            } catch {
                // The client may be gone (write failed); then this write fails too and we just stop.
                let failure = APIError.streamFailure(error)
                let message = (error as? RunError)?.message ?? failure.message
                try? await writer.write(SSE.event("error", ["error": ["message": message, "type": failure.type]]))
            }
            try? await writer.finish(nil)
        }
        return Response(status: .ok, headers: SSE.headers, body: body)
    }

    struct DoneBody: Encodable {
        var runID: String, saved: Bool, finishReason: String, run: RunDocument
        enum CodingKeys: String, CodingKey { case saved, run; case runID = "run_id", finishReason = "finish_reason" }
    }
}

/// Server-Sent Events framing.
enum SSE {
    static let headers: HTTPFields = [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache",
                                      HTTPFields.Element.Name("X-Accel-Buffering")!: "no"]

    static func encode<T: Encodable>(_ value: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // JSON from JSONEncoder has no raw newlines, so one data line is enough.
        return (try? String(decoding: e.encode(value), as: UTF8.self)) ?? "{}"
    }

    static func event<T: Encodable>(_ name: String, _ value: T) -> ByteBuffer {
        ByteBuffer(string: "event: \(name)\ndata: \(encode(value))\n\n")
    }

    static func data<T: Encodable>(_ value: T) -> ByteBuffer { ByteBuffer(string: "data: \(encode(value))\n\n") }

    static let doneMarker = ByteBuffer(string: "data: [DONE]\n\n")
}

/// Decoding-error text with the coding path (shared with RunImport's style).
enum RunImportErrorText {
    static func describe(_ error: Error) -> String {
        let path = dottedPath
        switch error {
        case DecodingError.typeMismatch(let t, let c): return "\(path(c.codingPath)): expected \(t)"
        case DecodingError.valueNotFound(let t, let c): return "\(path(c.codingPath)): missing \(t)"
        case DecodingError.keyNotFound(let k, _): return "\(k.stringValue): missing"
        case DecodingError.dataCorrupted(let c):
            let p = path(c.codingPath)
            return p.isEmpty ? "not valid JSON" : "\(p): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}
