import Foundation
import PersonaRuns

/// One chat message (OpenAI shape).
public struct APIMessage: Codable, Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// A steering intervention requested for one generation (the API form of `--steer trait:coef[@layer][:positions]`).
public struct APISteer: Codable, Sendable, Equatable {
    public var trait: String
    public var coef: Double
    /// Hugging Face hidden-state row; nil means the trait's recommended layer.
    public var layer: Int?
    /// all | prompt | response
    public var positions: String
    /// add | ablate
    public var mode: String
    /// Closed-loop condition such as "happy>0.5"; nil applies the vector unconditionally.
    public var when: String?

    public init(trait: String, coef: Double, layer: Int? = nil, positions: String = "all", mode: String = "add", when: String? = nil) {
        self.trait = trait; self.coef = coef; self.layer = layer; self.positions = positions; self.mode = mode; self.when = when
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case trait, coef, layer, positions, mode, when }

    /// Unknown fields are refused, and `coef` is required unless the mode is `ablate` (an add without it would
    /// steer by 0, a silent no-op).
    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        trait = try c.decode(String.self, forKey: .trait)
        layer = try c.integer(Int.self, forKey: .layer)
        positions = try c.decodeIfPresent(String.self, forKey: .positions) ?? "all"
        mode = try c.decodeIfPresent(String.self, forKey: .mode) ?? "add"
        when = try c.decodeIfPresent(String.self, forKey: .when)
        guard let k = try c.decodeIfPresent(Double.self, forKey: .coef) ?? (mode == "ablate" ? 0 : nil) else {
            throw FieldError(path: decoder.fieldPath("coef"), message: "required (the steering coefficient; or \"mode\": \"ablate\")")
        }
        coef = k
    }

    /// The same intervention as recorded in a run document.
    public var record: SteeringRecord {
        SteeringRecord(trait: trait, coef: coef, layer: layer, positions: positions, mode: mode, when: when)
    }
}

/// What to generate. JSON keys are snake_case (`max_tokens`, `top_p`, `top_k`, `min_p`, `top_logprobs`).
public struct GenerationRequest: Codable, Sendable, Equatable {
    /// Prompt text; with `raw` it is fed to the model as is, otherwise it is the user turn of the chat template.
    public var prompt: String
    /// A whole conversation (used instead of `prompt` when present).
    public var messages: [APIMessage]?
    public var maxTokens: Int
    public var temperature: Double
    public var topP: Double?
    public var topK: Int?
    public var minP: Double?
    public var seed: UInt64?
    /// OpenAI's penalties on tokens already generated (-2...2) and logit bias (token id as text -> -100...100).
    public var frequencyPenalty: Double?
    public var presencePenalty: Double?
    public var logitBias: [String: Double]?
    /// Skip the chat template.
    public var raw: Bool
    /// Stop sequences (text); generation ends before the first one produced.
    public var stop: [String]?
    public var steer: [APISteer]
    /// Traits to score; nil means every loaded trait.
    public var traits: [String]?
    /// How many alternatives to report per token (0 or nil: none).
    public var topLogprobs: Int?
    /// Store the finished run (the server reads this; backends may ignore it).
    public var save: Bool
    /// The model input as token ids (OpenAI completions' token prompts), fed as given: no template, no BOS added.
    /// Not a field of `/api/generate`.
    public var promptIds: [Int]? = nil
    /// Score the prompt (OpenAI's `echo`): the stream begins with `.prompt`, each prompt token's logprob given
    /// those before it with this many alternatives. Not a field of `/api/generate`.
    public var promptLogprobs: Int? = nil

    public init(prompt: String, messages: [APIMessage]? = nil, maxTokens: Int = 64, temperature: Double = 1, topP: Double? = nil,
                topK: Int? = nil, minP: Double? = nil, seed: UInt64? = nil, raw: Bool = false, stop: [String]? = nil,
                steer: [APISteer] = [], traits: [String]? = nil, topLogprobs: Int? = nil, save: Bool = true) {
        self.prompt = prompt; self.messages = messages; self.maxTokens = maxTokens; self.temperature = temperature
        self.topP = topP; self.topK = topK; self.minP = minP; self.seed = seed; self.raw = raw; self.stop = stop
        self.steer = steer; self.traits = traits; self.topLogprobs = topLogprobs; self.save = save
    }

    /// `logitBias` with integer token ids; a key that is not one is an error naming it.
    public func logitBiasIds() throws -> [Int: Double] {
        var out: [Int: Double] = [:]
        for (k, v) in logitBias ?? [:] {
            guard let id = Int(k.trimmingCharacters(in: .whitespaces)), id >= 0 else {
                throw APIError.badRequest("logit_bias: key \"\(k.prefix(40))\" is not a token id")
            }
            out[id] = v
        }
        return out
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case prompt, messages, temperature, seed, raw, stop, steer, traits, save
        case maxTokens = "max_tokens", topP = "top_p", topK = "top_k", minP = "min_p", topLogprobs = "top_logprobs"
        case frequencyPenalty = "frequency_penalty", presencePenalty = "presence_penalty", logitBias = "logit_bias"
    }

    /// Unknown fields are refused (`max_new_tokens` would otherwise be dropped for the default 64).
    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decodeIfPresent(String.self, forKey: .prompt) ?? ""
        messages = try c.decodeIfPresent([APIMessage].self, forKey: .messages)
        maxTokens = try c.integer(Int.self, forKey: .maxTokens) ?? 64
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature) ?? 1
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        topK = try c.integer(Int.self, forKey: .topK)
        minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        seed = try c.seed(forKey: .seed)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        logitBias = try c.decodeIfPresent([String: Double].self, forKey: .logitBias)
        raw = try c.decodeIfPresent(Bool.self, forKey: .raw) ?? false
        if let one = try? c.decodeIfPresent(String.self, forKey: .stop) {
            stop = [one]
        } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop)
        }
        steer = try c.decodeIfPresent([APISteer].self, forKey: .steer) ?? []
        traits = try c.decodeIfPresent([String].self, forKey: .traits)
        topLogprobs = try c.integer(Int.self, forKey: .topLogprobs)
        save = try c.decodeIfPresent(Bool.self, forKey: .save) ?? true
    }
}

/// One alternative token.
public struct TokenAlternative: Codable, Sendable, Equatable {
    public var id: Int
    public var text: String
    public var logprob: Double
    public init(id: Int, text: String, logprob: Double) { self.id = id; self.text = text; self.logprob = logprob }
}

/// One generated token with its trait scores, as soon as it is produced.
public struct StreamedToken: Codable, Sendable, Equatable {
    /// Position in the response (0-based).
    public var index: Int
    public var id: Int
    /// Display-safe text of the token.
    public var text: String
    /// Raw bytes of the token when they differ from `text`'s UTF-8 (e.g. a partial UTF-8 sequence).
    public var bytes: [UInt8]?
    /// The response text this token makes final, when it differs from `text`: "" while a character split over
    /// tokens is incomplete or while the text could still be the start of a stop string, then all of it; never a
    /// stop string. Streamed pieces in order, then what `done`'s response has beyond them, are the response.
    public var piece: String?
    public var logprob: Double?
    /// Alternatives, best first (as many as the request's `topLogprobs`).
    public var topK: [TokenAlternative]
    /// Score per trait at the trait's layer, for this token's own hidden state.
    public var scores: [String: Double]

    public init(index: Int, id: Int, text: String, bytes: [UInt8]? = nil, piece: String? = nil, logprob: Double? = nil,
                topK: [TokenAlternative] = [], scores: [String: Double] = [:]) {
        self.index = index; self.id = id; self.text = text; self.bytes = bytes; self.piece = piece; self.logprob = logprob
        self.topK = topK; self.scores = scores
    }

    enum CodingKeys: String, CodingKey { case index, id, text, bytes, piece, logprob, scores; case topK = "top_k" }
}

/// The prompt as the model saw it, scored (requests with `promptLogprobs`).
public struct ScoredPrompt: Sendable, Equatable {
    /// The prompt tokens decoded (special tokens kept).
    public var text: String
    /// Token i at index i: its logprob given the tokens before it (nil for the first), alternatives, and its
    /// trait scores.
    public var tokens: [StreamedToken]
    public init(text: String, tokens: [StreamedToken]) { self.text = text; self.tokens = tokens }
}

/// What a generation stream yields: the scored prompt (only when asked for), tokens as they are produced, then
/// the finished run.
public enum GenerationEvent: Sendable {
    case prompt(ScoredPrompt)
    case token(StreamedToken)
    /// The finished run; `finishReason` is "stop" (end of text or a stop sequence), "length" (max tokens) or "cancelled".
    case done(RunDocument, finishReason: String)
}

/// The loaded model, as the API reports it.
public struct ModelInfo: Codable, Sendable, Equatable {
    public var id: String
    public var architecture: String
    public var layers: Int
    public var hidden: Int
    public var contextLength: Int
    /// Token ids are 0..<vocabSize (nil: not known, ids are checked when the request runs).
    public var vocabSize: Int?
    public init(id: String, architecture: String, layers: Int, hidden: Int, contextLength: Int, vocabSize: Int? = nil) {
        self.id = id; self.architecture = architecture; self.layers = layers; self.hidden = hidden; self.contextLength = contextLength
        self.vocabSize = vocabSize
    }
    enum CodingKeys: String, CodingKey { case id, architecture, layers, hidden; case contextLength = "context_length", vocabSize = "vocab_size" }
}

/// A loaded trait vector.
public struct TraitInfo: Codable, Sendable, Equatable {
    public var name: String
    /// Hugging Face hidden-state row the trait is scored at (row l = output of block l-1).
    public var layer: Int
    /// TransformerLens hook point name, e.g. "blocks.2.hook_resid_post".
    public var hookPoint: String
    /// ||v|| at that row.
    public var norm: Double
    /// The row steering acts on when a request names none (the vector's measured or default steering row).
    public var steeringLayer: Int?
    /// The measured steering coefficient, when the vector file carries one.
    public var steeringCoef: Double?
    public init(name: String, layer: Int, hookPoint: String, norm: Double, steeringLayer: Int? = nil, steeringCoef: Double? = nil) {
        self.name = name; self.layer = layer; self.hookPoint = hookPoint; self.norm = norm
        self.steeringLayer = steeringLayer; self.steeringCoef = steeringCoef
    }
    enum CodingKeys: String, CodingKey {
        case name, layer, norm; case hookPoint = "hook_point"; case steeringLayer = "steering_layer"; case steeringCoef = "steering_coef"
    }
}

/// Live generation with monitoring. The CLI implements it with the real engine; the server only consumes it.
public protocol GenerationBackend: Sendable {
    var modelInfo: ModelInfo { get }
    var traits: [TraitInfo] { get }
    /// Streams tokens then `.done`. Cancelling the consuming task (or dropping the stream) must stop
    /// generation: implement `onTermination` on the stream's continuation.
    func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error>
}
