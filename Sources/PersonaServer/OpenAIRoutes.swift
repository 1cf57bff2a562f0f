import Foundation
import Hummingbird
import PersonaRuns

/// OpenAI-compatible /v1 routes. Each choice (and each streamed chunk) carries an extra `persona` field with
/// the per-token trait projections, so any OpenAI client gets monitoring for free.
struct OpenAIRoutes: Sendable {
    let api: APIRoutes

    func add(to router: Router<BasicRequestContext>) {
        router.get("/v1/models") { _, _ in try self.models() }
        router.post("/v1/chat/completions") { req, _ in try await self.completions(req, chat: true) }
        router.post("/v1/completions") { req, _ in try await self.completions(req, chat: false) }
    }

    func models() throws -> Response {
        var data: [JSONValue] = []
        if let b = api.backend {
            data.append(.object(["id": .string(b.modelInfo.id), "object": "model", "created": 0, "owned_by": "personascope"]))
        }
        return try jsonResponse(JSONValue.object(["object": "list", "data": .array(data)]))
    }

    // MARK: request

    /// Fields of both request kinds; unknown fields (presence_penalty, user, ...) are ignored. PersonaScope's own
    /// fields go in `persona`; `top_k` and `min_p` (as vLLM and llama.cpp's server take them) and `steer`, `traits`,
    /// `save` (as `/api/generate` takes them) are read at the top level too, so a request written for either is not
    /// run without them. The same field in both places with different values is refused.
    struct Body: Decodable {
        var model: String?
        var messages: [Message]?
        var prompt: PromptField?
        var maxTokens: Int?
        var maxCompletionTokens: Int?
        var temperature: Double?
        var topP: Double?
        var seed: UInt64?
        var frequencyPenalty: Double?
        var presencePenalty: Double?
        var logitBias: [String: Double]?
        var responseFormat: ResponseFormat?
        var stop: StopField?
        var logprobs: LogprobsField?
        var topLogprobs: Int?
        var stream: Bool?
        var streamOptions: StreamOptions?
        var n: Int?
        var echo: Bool?
        var persona: PersonaOptions?
        /// The top-level forms of the `persona` fields.
        var topLevel: PersonaOptions

        enum CodingKeys: String, CodingKey {
            case model, messages, prompt, temperature, seed, stop, logprobs, stream, n, echo, persona
            case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topP = "top_p"
            case topLogprobs = "top_logprobs", streamOptions = "stream_options"
            case frequencyPenalty = "frequency_penalty", presencePenalty = "presence_penalty", logitBias = "logit_bias"
            case responseFormat = "response_format"
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            model = try c.decodeIfPresent(String.self, forKey: .model)
            messages = try c.decodeIfPresent([Message].self, forKey: .messages)
            prompt = try c.decodeIfPresent(PromptField.self, forKey: .prompt)
            maxTokens = try c.integer(Int.self, forKey: .maxTokens)
            maxCompletionTokens = try c.integer(Int.self, forKey: .maxCompletionTokens)
            temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
            topP = try c.decodeIfPresent(Double.self, forKey: .topP)
            seed = try c.seed(forKey: .seed)
            frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
            presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
            logitBias = try c.decodeIfPresent([String: Double].self, forKey: .logitBias)
            responseFormat = try c.decodeIfPresent(ResponseFormat.self, forKey: .responseFormat)
            stop = try c.decodeIfPresent(StopField.self, forKey: .stop)
            logprobs = try c.decodeIfPresent(LogprobsField.self, forKey: .logprobs)
            topLogprobs = try c.integer(Int.self, forKey: .topLogprobs)
            stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
            streamOptions = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
            n = try c.integer(Int.self, forKey: .n)
            echo = try c.decodeIfPresent(Bool.self, forKey: .echo)
            persona = try c.decodeIfPresent(PersonaOptions.self, forKey: .persona)
            topLevel = try PersonaOptions(fields: decoder)
        }

        /// A `persona` field from wherever it was given; both places with different values is an error.
        func option<V: Equatable>(_ key: PersonaOptions.CodingKeys, _ field: KeyPath<PersonaOptions, V?>) throws -> V? {
            let inner = persona?[keyPath: field], outer = topLevel[keyPath: field]
            if let inner, let outer, inner != outer {
                throw APIError.badRequest("\(key.stringValue): given at the top level and in persona with different values; give it once")
            }
            return inner ?? outer
        }
    }

    /// Only `{"type": "text"}`: there is no constrained decoding, and an answer that ignored a JSON format asked
    /// for would be a silent wrong answer.
    struct ResponseFormat: Decodable { var type: String }

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    /// Extension field: steering, trait selection, top_k/min_p and saving, for clients that know about it.
    /// Unknown fields inside `persona` are refused (it is PersonaScope's own object).
    struct PersonaOptions: Decodable {
        var steer: [APISteer]?
        var traits: [String]?
        var save: Bool?
        var topK: Int?
        var minP: Double?
        enum CodingKeys: String, CodingKey, CaseIterable { case steer, traits, save; case topK = "top_k", minP = "min_p" }

        init(from decoder: Decoder) throws {
            try decoder.rejectUnknownFields(CodingKeys.self)
            try self.init(fields: decoder)
        }
        /// Reads the fields it knows from an object that may hold others (the request body's top level).
        init(fields decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            steer = try c.decodeIfPresent([APISteer].self, forKey: .steer)
            traits = try c.decodeIfPresent([String].self, forKey: .traits)
            save = try c.decodeIfPresent(Bool.self, forKey: .save)
            topK = try c.integer(Int.self, forKey: .topK)
            minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        }
    }

    /// A message whose content is a string or a list of `{type: "text", text}` parts.
    struct Message: Decodable {
        var role: String
        var content: String
        enum CodingKeys: String, CodingKey { case role, content }
        struct Part: Decodable { var type: String; var text: String? }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            if let s = try? c.decode(String.self, forKey: .content) {
                content = s
            } else if let parts = try? c.decode([Part].self, forKey: .content) {
                guard parts.allSatisfy({ $0.type == "text" }) else {
                    throw DecodingError.dataCorruptedError(forKey: .content, in: c, debugDescription: "only text content parts are supported")
                }
                content = parts.compactMap(\.text).joined()
            } else if try c.decodeNil(forKey: .content) {
                content = ""
            } else {
                throw DecodingError.dataCorruptedError(forKey: .content, in: c, debugDescription: "expected a string or a list of text parts")
            }
        }
    }

    /// OpenAI's four forms: a string, a list of strings, a list of token ids, a list of token-id lists. Each
    /// prompt is one choice; token ids are fed as given (no BOS added).
    struct PromptField: Decodable {
        enum Prompt: Equatable { case text(String), ids([Int]) }
        var prompts: [Prompt]
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) {
                prompts = [.text(s)]
            } else if let list = try? c.decode([String].self) {
                prompts = list.map { .text($0) }
            } else if let ids = try? c.decode([Int].self) {
                prompts = [.ids(ids)]
            } else if let lists = try? c.decode([[Int]].self) {
                prompts = lists.map { .ids($0) }
            } else {
                throw FieldError(path: dottedPath(decoder.codingPath),
                                 message: "must be a string, a list of strings, a list of token ids or a list of token-id lists")
            }
            guard !prompts.isEmpty else { throw FieldError(path: dottedPath(decoder.codingPath), message: "must not be an empty list") }
        }
    }

    /// Most prompts one completions request may carry (they run one after another in the request's slot).
    static let maxPrompts = 64

    struct StopField: Decodable {
        var values: [String]
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { values = [] } else if let s = try? c.decode(String.self) { values = [s] } else { values = try c.decode([String].self) }
        }
    }

    /// Chat: a boolean; completions: an integer count of alternatives.
    struct LogprobsField: Decodable {
        var enabled: Bool
        var count: Int?
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { enabled = false; count = nil } else if let b = try? c.decode(Bool.self) { enabled = b; count = nil } else {
                do { count = try c.decode(Int.self) } catch let e as DecodingError {
                    throw e
                } catch {  // 1.5, 1e30: Linux's decoder would call this "not valid JSON" (see `integer(_:forKey:)`)
                    throw FieldError(path: dottedPath(decoder.codingPath), message: "must be true, false or an integer")
                }
                enabled = true
            }
        }
    }

    /// What a request asks for: one generation per prompt (chat: one), and how to report them.
    struct Plan {
        var requests: [GenerationRequest]
        /// For echo: what each choice's text begins with, when it is the prompt as given (nil: the decoded tokens).
        var echoTexts: [String?]
        var wantLogprobs: Bool
        var echo: Bool
    }

    /// Maps an OpenAI request onto generation requests; throws 400 naming the parameter.
    func plan(_ b: Body, chat: Bool) throws -> Plan {
        if let n = b.n, n != 1 { throw APIError.badRequest("n: only n=1 is supported") }
        let echo = b.echo ?? false
        if echo && chat { throw APIError.badRequest("echo: only /v1/completions takes echo") }
        if let f = b.responseFormat, f.type != "text" {
            throw APIError.badRequest("response_format: \"\(f.type.prefix(40))\" is not supported (no constrained decoding); only \"text\"")
        }
        var topLogprobs = 0
        var wantLogprobs = false
        var prompts: [PromptField.Prompt] = []
        if chat {
            guard let msgs = b.messages, !msgs.isEmpty else { throw APIError.badRequest("messages: required and must not be empty") }
            if let lp = b.logprobs, lp.count != nil { throw APIError.badRequest("logprobs: must be a boolean for chat completions") }
            wantLogprobs = b.logprobs?.enabled ?? false
            topLogprobs = b.topLogprobs ?? 0
            if topLogprobs > 0 && !wantLogprobs { throw APIError.badRequest("top_logprobs: requires logprobs=true") }
        } else {
            guard let p = b.prompt else { throw APIError.badRequest("prompt: required") }
            guard p.prompts.count <= Self.maxPrompts else {
                throw APIError.badRequest("prompt: \(p.prompts.count) prompts; at most \(Self.maxPrompts) per request")
            }
            prompts = p.prompts
            wantLogprobs = b.logprobs?.enabled ?? false
            if let lp = b.logprobs, lp.count == nil, lp.enabled { throw APIError.badRequest("logprobs: must be an integer for completions") }
            topLogprobs = b.logprobs?.count ?? 0
        }
        guard (0...20).contains(topLogprobs) else { throw APIError.badRequest("top_logprobs: must be from 0 to 20") }
        let maxTokens = b.maxCompletionTokens ?? b.maxTokens ?? (chat ? min(256, api.config.maxTokensPerRequest) : 16)
        let messages = b.messages?.map { APIMessage(role: $0.role, content: $0.content) }
        let chatPrompt = messages?.last(where: { $0.role == "user" })?.content ?? messages?.last?.content ?? ""
        var base = GenerationRequest(prompt: chatPrompt, messages: chat ? messages : nil, maxTokens: maxTokens,
                                     temperature: b.temperature ?? 1, topP: b.topP, topK: try b.option(.topK, \.topK),
                                     minP: try b.option(.minP, \.minP),
                                     seed: b.seed, raw: !chat, stop: b.stop?.values,
                                     steer: try b.option(.steer, \.steer) ?? api.config.defaultSteer, traits: try b.option(.traits, \.traits),
                                     topLogprobs: wantLogprobs ? topLogprobs : 0, save: try b.option(.save, \.save) ?? false)
        if base.stop?.isEmpty == true { base.stop = nil }
        base.frequencyPenalty = b.frequencyPenalty
        base.presencePenalty = b.presencePenalty
        base.logitBias = b.logitBias
        // echo scores the prompt (the alternatives only when logprobs were asked for)
        if echo { base.promptLogprobs = wantLogprobs ? topLogprobs : 0 }
        if chat { return Plan(requests: [base], echoTexts: [nil], wantLogprobs: wantLogprobs, echo: echo) }
        var requests: [GenerationRequest] = []
        var echoTexts: [String?] = []
        for p in prompts {
            var r = base
            switch p {
            case .text(let t): (r.prompt, r.promptIds) = (t, nil)
            case .ids(let i): (r.prompt, r.promptIds) = ("", i)
            }
            requests.append(r)
            echoTexts.append(r.promptIds == nil ? r.prompt : nil)
        }
        return Plan(requests: requests, echoTexts: echoTexts, wantLogprobs: wantLogprobs, echo: echo)
    }

    /// Checks every request; with several prompts an error names the one it is about (`prompt[2]: ...`).
    func validate(_ plan: Plan) throws {
        for (i, r) in plan.requests.enumerated() {
            do { try api.validate(r) } catch let e as APIError where plan.requests.count > 1 && e.message.hasPrefix("prompt: ") {
                throw APIError.badRequest("prompt[\(i)]: " + e.message.dropFirst("prompt: ".count))
            }
        }
    }

    // MARK: response

    func completions(_ req: Request, chat: Bool) async throws -> Response {
        let backend = try api.requireBackend()
        let body = try await api.decodeJSON(Body.self, req)
        let plan = try plan(body, chat: chat)
        try validate(plan)
        let slot = try await api.acquireSlot()
        let ctx = ResponseContext(id: (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""),
                                  created: Int(Date().timeIntervalSince1970), model: backend.modelInfo.id, chat: chat,
                                  logprobs: plan.wantLogprobs, layers: Dictionary(backend.traits.map { ($0.name, $0.layer) }, uniquingKeysWith: { a, _ in a }))
        // several prompts run one after another in this request's slot, each its own choice
        if body.stream == true {
            let includeUsage = body.streamOptions?.includeUsage ?? false
            let responseBody = ResponseBody { writer in
                defer { slot.release() }
                do {
                    var runs: [RunDocument] = []
                    for (index, gen) in plan.requests.enumerated() {
                        if chat { try await writer.write(SSE.data(ctx.chunk(index: index, delta: ["role": "assistant", "content": ""], token: nil, finish: nil, persona: nil))) }
                        // The content deltas add up to the non-streamed content: each token's final piece of the
                        // response (not its display text, which spells a split character as bytes), then the rest.
                        var sent = ""
                        for try await event in backend.generate(gen) {
                            switch event {
                            case .prompt(let p):
                                try await writer.write(SSE.data(ctx.echoChunk(index: index, text: plan.echoTexts[index] ?? p.text, prompt: p)))
                            case .token(let t):
                                let piece = t.piece ?? t.text
                                sent += piece
                                try await writer.write(SSE.data(ctx.chunk(index: index, delta: ["content": .string(piece)], token: t, finish: nil,
                                                                          persona: ctx.tokenPersona(t))))
                            case .done(let run, let reason):
                                // In bytes: sent may end inside a Character of the response ("\r" of "\r\n").
                                if run.response.utf8.count > sent.utf8.count, run.response.utf8.starts(with: sent.utf8) {
                                    let rest = String(decoding: run.response.utf8.dropFirst(sent.utf8.count), as: UTF8.self)
                                    try await writer.write(SSE.data(ctx.chunk(index: index, delta: ["content": .string(rest)], token: nil, finish: nil, persona: nil)))
                                }
                                let finished = try await api.finish(run, save: gen.save)
                                runs.append(finished)
                                try await writer.write(SSE.data(ctx.chunk(index: index, delta: [:], token: nil, finish: ctx.finishReason(reason),
                                                                          persona: ctx.runPersona(finished, saved: gen.save))))
                            }
                        }
                    }
                    if includeUsage {
                        try await writer.write(SSE.data(ctx.usageChunk(runs)))
                    }
                } catch {
                    let failure = APIError.streamFailure(error)
                    try? await writer.write(SSE.data(JSONValue.object(["error": .object([
                        "message": .string(failure.message), "type": .string(failure.type)])])))
                }
                try? await writer.write(SSE.doneMarker)
                try? await writer.finish(nil)
            }
            return Response(status: .ok, headers: SSE.headers, body: responseBody)
        }

        defer { slot.release() }
        var choices: [JSONValue] = []
        var runs: [RunDocument] = []
        for (index, gen) in plan.requests.enumerated() {
            var tokens: [StreamedToken] = []
            var prompt: ScoredPrompt?
            var result: (RunDocument, String)?
            for try await event in backend.generate(gen) {
                switch event {
                case .prompt(let p): prompt = p
                case .token(let t): tokens.append(t)
                case .done(let run, let reason): result = (run, reason)
                }
            }
            guard let (run, reason) = result else { throw APIError(.internalServerError, "generation ended without a result") }
            if plan.echo && prompt == nil { throw APIError(.internalServerError, "echo: the backend did not score the prompt") }
            let finished = try await api.finish(run, save: gen.save)
            runs.append(finished)
            choices.append(ctx.choice(index: index, finished, tokens: tokens, reason: reason, saved: gen.save,
                                      echo: prompt.map { (plan.echoTexts[index] ?? $0.text, $0) }))
        }
        var o = ctx.envelope(choices, object: chat ? "chat.completion" : "text_completion")
        o["usage"] = ctx.usage(runs)
        return try jsonResponse(JSONValue.object(o), sortedKeys: false)
    }

    /// Builds the JSON bodies of one response.
    struct ResponseContext: Sendable {
        let id: String
        let created: Int
        let model: String
        let chat: Bool
        let logprobs: Bool
        let layers: [String: Int]

        func finishReason(_ r: String) -> String { r == "length" ? "length" : "stop" }

        static func bytes(_ t: StreamedToken) -> [UInt8] { t.bytes ?? Array(t.text.utf8) }

        /// Chat format: `{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}`.
        func chatLogprob(_ t: StreamedToken) -> JSONValue {
            .object([
                "token": .string(t.text), "logprob": .number(t.logprob ?? 0),
                "bytes": .array(ResponseContext.bytes(t).map { .number(Double($0)) }),
                "top_logprobs": .array(t.topK.map { alt in
                    .object(["token": .string(alt.text), "logprob": .number(alt.logprob),
                             "bytes": .array(Array(alt.text.utf8).map { .number(Double($0)) })])
                }),
            ])
        }

        /// Completions format: parallel lists `tokens`, `token_logprobs`, `top_logprobs` (token -> logprob maps), `text_offset`.
        /// A token without a logprob (an echoed prompt's first) has null in both.
        func completionLogprobs(_ ts: [StreamedToken], startOffset: Int = 0) -> JSONValue {
            var offsets: [JSONValue] = []
            var off = startOffset
            for t in ts { offsets.append(.number(Double(off))); off += ResponseContext.bytes(t).count }   // the token's bytes, not its display text
            return .object([
                "tokens": .array(ts.map { .string($0.text) }),
                "token_logprobs": .array(ts.map { $0.logprob.map { .number($0) } ?? .null }),
                "top_logprobs": .array(ts.map { t in
                    guard t.logprob != nil else { return .null }
                    var m: [String: JSONValue] = [:]
                    for alt in t.topK where m[alt.text] == nil { m[alt.text] = .number(alt.logprob) }
                    return .object(m)
                }),
                "text_offset": .array(offsets),
            ])
        }

        /// The echoed prompt's trait scores, per prompt token.
        func promptPersona(_ p: ScoredPrompt) -> JSONValue {
            var scores: [String: [JSONValue]] = [:]
            for t in p.tokens { for (trait, v) in t.scores { scores[trait, default: []].append(.number(v)) } }
            return .object(["prompt_trait_scores": .object(scores.mapValues { .array($0) })])
        }

        /// The first chunk of an echoing stream: the prompt, with its logprobs when asked for.
        func echoChunk(index: Int, text: String, prompt: ScoredPrompt) -> JSONValue {
            let choice: [String: JSONValue] = ["index": .number(Double(index)), "finish_reason": .null, "text": .string(text),
                                               "logprobs": logprobs ? completionLogprobs(prompt.tokens) : .null,
                                               "persona": promptPersona(prompt)]
            return .object(envelope([.object(choice)], object: "text_completion"))
        }

        func tokenPersona(_ t: StreamedToken) -> JSONValue {
            .object([
                "token_index": .number(Double(t.index)),
                "trait_scores": .object(t.scores.mapValues { .array([.number($0)]) }),
                "layers": .object(layers.filter { t.scores[$0.key] != nil }.mapValues { .number(Double($0)) }),
            ])
        }

        func runPersona(_ run: RunDocument, saved: Bool) -> JSONValue {
            var o: [String: JSONValue] = [
                "trait_scores": .object(run.traitScores.mapValues { .array($0.map { .number($0) }) }),
                "layers": .object((run.layers ?? layers.filter { run.traitScores[$0.key] != nil }).mapValues { .number(Double($0)) }),
            ]
            if let hp = run.hookPoints { o["hook_points"] = .object(hp.mapValues { .string($0) }) }
            if let dp = run.decisionPoints {
                o["decision_points"] = .object(dp.mapValues { list in
                    .array(list.map { .object(["index": .number(Double($0.index)), "kind": .string($0.kind.rawValue),
                                               "method": .string($0.method), "score": .number($0.score)]) })
                })
            }
            o["run_id"] = saved ? .string(run.id) : .null
            return .object(o)
        }

        /// Summed over the request's prompts.
        func usage(_ runs: [RunDocument]) -> JSONValue {
            let p = runs.reduce(0) { $0 + ($1.promptTokenIds?.count ?? $1.promptTokens?.count ?? 0) }
            let c = runs.reduce(0) { $0 + $1.tokens.count }
            return .object(["prompt_tokens": .number(Double(p)), "completion_tokens": .number(Double(c)), "total_tokens": .number(Double(p + c))])
        }

        func envelope(_ choices: [JSONValue], object: String) -> [String: JSONValue] {
            ["id": .string(id), "object": .string(object), "created": .number(Double(created)), "model": .string(model),
             "system_fingerprint": "personascope", "choices": .array(choices)]
        }

        /// One choice of a non-streamed response; `echo` puts the prompt (text, scored tokens) before the answer.
        func choice(index: Int, _ run: RunDocument, tokens: [StreamedToken], reason: String, saved: Bool,
                    echo: (text: String, prompt: ScoredPrompt)?) -> JSONValue {
            var persona = runPersona(run, saved: saved)
            if let echo, case .object(var o) = persona, case .object(let extra) = promptPersona(echo.prompt) {
                o.merge(extra) { a, _ in a }
                persona = .object(o)
            }
            var choice: [String: JSONValue] = ["index": .number(Double(index)), "finish_reason": .string(finishReason(reason)), "persona": persona]
            if chat {
                choice["message"] = .object(["role": "assistant", "content": .string(run.response), "refusal": .null])
                choice["logprobs"] = logprobs ? .object(["content": .array(tokens.map(chatLogprob)), "refusal": .null]) : .null
            } else {
                choice["text"] = .string((echo?.text ?? "") + run.response)
                choice["logprobs"] = logprobs ? completionLogprobs((echo?.prompt.tokens ?? []) + tokens) : .null
            }
            return .object(choice)
        }

        func chunk(index: Int, delta: [String: JSONValue], token: StreamedToken?, finish: String?, persona: JSONValue?) -> JSONValue {
            var choice: [String: JSONValue] = ["index": .number(Double(index)), "finish_reason": finish.map { .string($0) } ?? .null]
            if let persona { choice["persona"] = persona }
            if chat {
                choice["delta"] = .object(delta)
                choice["logprobs"] = (logprobs && token != nil) ? .object(["content": .array([chatLogprob(token!)]), "refusal": .null]) : .null
            } else {
                choice["text"] = delta["content"] ?? ""
                choice["logprobs"] = (logprobs && token != nil) ? completionLogprobs([token!]) : .null
            }
            return .object(envelope([.object(choice)], object: chat ? "chat.completion.chunk" : "text_completion"))
        }

        func usageChunk(_ runs: [RunDocument]) -> JSONValue {
            var o = envelope([], object: chat ? "chat.completion.chunk" : "text_completion")
            o["usage"] = usage(runs)
            return .object(o)
        }
    }
}
