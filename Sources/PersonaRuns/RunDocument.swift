import Foundation

/// One monitored generation: schema `personascope.run/1` (see docs/run-format.md).
///
/// A superset of the per-token project's result entries, so either side's files load into the other's tools.
/// Unknown top-level keys are kept in `extras` and written back unchanged.
public struct RunDocument: Codable, Sendable, Equatable {
    /// The schema this type writes.
    public static let currentSchema = "personascope.run/1"
    /// Major version of `currentSchema`; documents with a higher major version are refused.
    public static let currentVersion = 1
    /// `metadata.convention` for runs made by this project.
    public static let ownConvention = "score[i] = (h_i . v)/||v|| where h_i is the hidden state at token i's own position (not the position that predicted it)"
    /// `metadata.convention` for runs imported from the per-token project.
    public static let importedConvention = "imported from trait-interp: score[i] is the state of the position that predicted token i"

    public var schema: String
    public var id: String
    /// ISO-8601 creation time; absent for imported runs that had none.
    public var created: String?
    public var model: ModelRef?
    /// The user's prompt text, as typed.
    public var prompt: String
    /// Exactly what the model saw (after the chat template).
    public var promptText: String?
    public var response: String
    /// Display-safe text of each generated token.
    public var tokens: [String]
    public var tokenIds: [Int]?
    public var promptTokens: [String]?
    public var promptTokenIds: [Int]?
    /// One score per response token per trait, at the trait's layer (`layers`). Read from
    /// `projections` when `trait_scores` is absent; written under both keys by default.
    public var traitScores: [String: [Double]]
    public var promptScores: [String: [Double]]?
    /// Hugging Face hidden-state row of each trait's score (row l = output of block l-1).
    public var layers: [String: Int]?
    /// TransformerLens name of the hook point each trait was read at.
    public var hookPoints: [String: String]?
    /// Per trait, `[L+1][num_tokens]` scores at every row, when all layers were recorded.
    public var perLayer: [String: [[Double]]]?
    public var cosine: [String: [Double]]?
    public var residNorm: [Double]?
    /// log p(chosen token) per response token.
    public var logprobs: [Double]?
    public var topK: [[TopKEntry]]?
    public var decisionPoints: [String: [DecisionPoint]]?
    public var steering: [SteeringRecord]?
    public var stats: [String: TraitStats]?
    public var correlations: Correlations?
    /// Free-form; the per-token project's keys (num_tokens, layer, personas, max_new_tokens) are kept.
    public var metadata: [String: JSONValue]
    /// Top-level keys this version does not know, kept for round trips (e.g. `evil_running_avg_10`).
    public var extras: [String: JSONValue]

    public init(id: String = UUID().uuidString.lowercased(), created: String? = RunDocument.timestamp(),
                model: ModelRef? = nil, prompt: String, promptText: String? = nil, response: String,
                tokens: [String], tokenIds: [Int]? = nil, traitScores: [String: [Double]] = [:],
                layers: [String: Int]? = nil, hookPoints: [String: String]? = nil,
                metadata: [String: JSONValue] = ["convention": .string(RunDocument.ownConvention)]) {
        self.schema = RunDocument.currentSchema
        self.id = id
        self.created = created
        self.model = model
        self.prompt = prompt
        self.promptText = promptText
        self.response = response
        self.tokens = tokens
        self.tokenIds = tokenIds
        self.traitScores = traitScores
        self.layers = layers
        self.hookPoints = hookPoints
        self.metadata = metadata
        self.extras = [:]
    }

    /// Traits in a stable (sorted) order.
    public var traitNames: [String] { traitScores.keys.sorted() }

    /// Current time as ISO-8601 (seconds, UTC).
    public static func timestamp(_ date: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    // MARK: Codable

    enum Key: String, CaseIterable {
        case schema, id, created, model, prompt, response, tokens, projections, layers, cosine, logprobs
        case steering, stats, correlations, metadata
        case promptText = "prompt_text", tokenIds = "token_ids", promptTokens = "prompt_tokens"
        case promptTokenIds = "prompt_token_ids", traitScores = "trait_scores", promptScores = "prompt_scores"
        case hookPoints = "hook_points", perLayer = "per_layer", residNorm = "resid_norm", topK = "top_k"
        case decisionPoints = "decision_points"
    }

    /// Where in an all-integer value ([Int], [String: Int]) the first number that is not an Int is, and that number.
    /// Nil for values with other numbers in them (scores, logprobs), where it could not tell which was meant.
    static func firstNonInteger(_ v: JSONValue) -> ([CodingKey], String)? {
        func isInt(_ d: Double) -> Bool { d == d.rounded() && abs(d) < 9.2e18 }
        func isNumber(_ x: JSONValue) -> Bool {
            switch x { case .number, .integer: return true; default: return false }
        }
        switch v {
        case .number(let d): return isInt(d) ? nil : ([], "\(d)")
        case .integer: return nil
        case .array(let a):
            guard a.allSatisfy(isNumber) else { return nil }
            for (i, x) in a.enumerated() { if let (p, n) = firstNonInteger(x) { return ([IndexKey(i)] + p, n) } }
        case .object(let o):
            guard o.values.allSatisfy(isNumber) else { return nil }
            for k in o.keys.sorted() { if let (p, n) = firstNonInteger(o[k]!) { return ([AnyKey(k)] + p, n) } }
        default: break
        }
        return nil
    }

    struct IndexKey: CodingKey {
        var intValue: Int?
        var stringValue: String { "\(intValue!)" }
        init(_ i: Int) { intValue = i }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    /// Encoder `userInfo` key: false omits the `projections` copy of `trait_scores` when encoding.
    public static let writeProjectionsKey = CodingUserInfoKey(rawValue: "personascope.writeProjections")!

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        func opt<T: Decodable>(_ k: Key, _ t: T.Type) throws -> T? {
            let key = AnyKey(k.rawValue)
            do { return try c.decodeIfPresent(T.self, forKey: key) } catch let e as DecodingError { throw e } catch {
                // Linux's JSONDecoder throws an internal error for a number that is not the field's integer (1.5, 1e30)
                // and reports it as a pathless "The given data was not valid JSON"; say where it is instead
                let (path, n) = (try? c.decode(JSONValue.self, forKey: key)).flatMap(Self.firstNonInteger) ?? ([], nil)
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key] + path,
                    debugDescription: n.map { "\($0) is not an integer" } ?? "a number in it is not an integer (ids, indexes and layers are)"))
            }
        }
        schema = try opt(.schema, String.self) ?? RunDocument.currentSchema
        id = try opt(.id, String.self) ?? UUID().uuidString.lowercased()
        created = try opt(.created, String.self)
        model = try opt(.model, ModelRef.self)
        prompt = try opt(.prompt, String.self) ?? ""
        promptText = try opt(.promptText, String.self)
        response = try opt(.response, String.self) ?? ""
        tokens = try opt(.tokens, [String].self) ?? []
        tokenIds = try opt(.tokenIds, [Int].self)
        promptTokens = try opt(.promptTokens, [String].self)
        promptTokenIds = try opt(.promptTokenIds, [Int].self)
        if let ts = try opt(.traitScores, [String: [Double]].self) {
            traitScores = ts
        } else {
            traitScores = try opt(.projections, [String: [Double]].self) ?? [:]
        }
        promptScores = try opt(.promptScores, [String: [Double]].self)
        layers = try opt(.layers, [String: Int].self)
        hookPoints = try opt(.hookPoints, [String: String].self)
        perLayer = try opt(.perLayer, [String: [[Double]]].self)
        cosine = try opt(.cosine, [String: [Double]].self)
        residNorm = try opt(.residNorm, [Double].self)
        logprobs = try opt(.logprobs, [Double].self)
        topK = try opt(.topK, [[TopKEntry]].self)
        decisionPoints = try opt(.decisionPoints, [String: [DecisionPoint]].self)
        steering = try opt(.steering, [SteeringRecord].self)
        stats = try opt(.stats, [String: TraitStats].self)
        correlations = try opt(.correlations, Correlations.self)
        metadata = try opt(.metadata, [String: JSONValue].self) ?? [:]
        let known = Set(Key.allCases.map(\.rawValue))
        var extras: [String: JSONValue] = [:]
        for k in c.allKeys where !known.contains(k.stringValue) {
            extras[k.stringValue] = try c.decode(JSONValue.self, forKey: k)
        }
        self.extras = extras
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        func put<T: Encodable>(_ k: Key, _ v: T?) throws {
            if let v { try c.encode(v, forKey: AnyKey(k.rawValue)) }
        }
        try put(.schema, schema)
        try put(.id, id)
        try put(.created, created)
        try put(.model, model)
        try put(.prompt, prompt)
        try put(.promptText, promptText)
        try put(.response, response)
        try put(.tokens, tokens)
        try put(.tokenIds, tokenIds)
        try put(.promptTokens, promptTokens)
        try put(.promptTokenIds, promptTokenIds)
        try put(.traitScores, traitScores)
        if (encoder.userInfo[RunDocument.writeProjectionsKey] as? Bool) ?? true {
            try put(.projections, traitScores)
        }
        try put(.promptScores, promptScores)
        try put(.layers, layers)
        try put(.hookPoints, hookPoints)
        try put(.perLayer, perLayer)
        try put(.cosine, cosine)
        try put(.residNorm, residNorm)
        try put(.logprobs, logprobs)
        try put(.topK, topK)
        try put(.decisionPoints, decisionPoints)
        try put(.steering, steering)
        try put(.stats, stats)
        try put(.correlations, correlations)
        try put(.metadata, metadata)
        let known = Set(Key.allCases.map(\.rawValue))
        for (k, v) in extras where !known.contains(k) {
            try c.encode(v, forKey: AnyKey(k))
        }
    }

    // MARK: JSON helpers

    /// Encodes one run (pretty-printed; keys sorted when `sortedKeys`).
    public func jsonData(sortedKeys: Bool = false, pretty: Bool = true, writeProjections: Bool = true) throws -> Data {
        try RunDocument.encoder(sortedKeys: sortedKeys, pretty: pretty, writeProjections: writeProjections).encode(self)
    }

    /// Encodes a list of runs as one JSON array.
    public static func jsonData(_ runs: [RunDocument], sortedKeys: Bool = false, pretty: Bool = true,
                                writeProjections: Bool = true) throws -> Data {
        try encoder(sortedKeys: sortedKeys, pretty: pretty, writeProjections: writeProjections).encode(runs)
    }

    /// A JSON encoder set up for run documents.
    public static func encoder(sortedKeys: Bool = false, pretty: Bool = true, writeProjections: Bool = true) -> JSONEncoder {
        let e = JSONEncoder()
        var f: JSONEncoder.OutputFormatting = [.withoutEscapingSlashes]
        if pretty { f.insert(.prettyPrinted) }
        if sortedKeys { f.insert(.sortedKeys) }
        e.outputFormatting = f
        e.userInfo[writeProjectionsKey] = writeProjections
        return e
    }
}

/// The model a run was made with.
public struct ModelRef: Codable, Sendable, Equatable {
    public var id: String
    public var path: String?
    public var architecture: String?
    public var numLayers: Int?
    public var hiddenSize: Int?

    public init(id: String, path: String? = nil, architecture: String? = nil, numLayers: Int? = nil, hiddenSize: Int? = nil) {
        self.id = id; self.path = path; self.architecture = architecture; self.numLayers = numLayers; self.hiddenSize = hiddenSize
    }

    enum CodingKeys: String, CodingKey {
        case id, path, architecture
        case numLayers = "num_layers", hiddenSize = "hidden_size"
    }
}

/// One alternative token at a position.
public struct TopKEntry: Codable, Sendable, Equatable {
    public var id: Int
    public var token: String
    public var logprob: Double
    public init(id: Int, token: String, logprob: Double) { self.id = id; self.token = token; self.logprob = logprob }
}

/// A token where a trait turns.
public struct DecisionPoint: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case rise, fall, spike }
    /// Index into the response tokens.
    public var index: Int
    public var kind: Kind
    /// "cusum" family detector name (see docs/decision-points.md) or "pertoken-rule".
    public var method: String
    /// Signed size of the change in robust noise units (positive for rises and upward spikes).
    public var score: Double
    public init(index: Int, kind: Kind, method: String, score: Double) {
        self.index = index; self.kind = kind; self.method = method; self.score = score
    }
}

/// A steering intervention applied during the run.
public struct SteeringRecord: Codable, Sendable, Equatable {
    public var trait: String
    public var coef: Double
    public var layer: Int?
    /// all | prompt | response
    public var positions: String
    /// add | ablate
    public var mode: String
    /// Closed-loop condition such as "happy>0.5".
    public var when: String?
    public init(trait: String, coef: Double, layer: Int? = nil, positions: String = "all", mode: String = "add", when: String? = nil) {
        self.trait = trait; self.coef = coef; self.layer = layer; self.positions = positions; self.mode = mode; self.when = when
    }
    public static let validPositions: Set<String> = ["all", "prompt", "response"]
    public static let validModes: Set<String> = ["add", "ablate"]

    /// A closed-loop condition `trait>threshold` or `trait<threshold` in its parts; nil when `text` is not of that
    /// form (the one syntax of `--steer-when`, a steering entry's `when` in the API and in run files).
    public static func parseCondition(_ text: String) -> (trait: String, above: Bool, threshold: Float)? {
        for (op, above) in [(Character(">"), true), (Character("<"), false)] {
            guard let i = text.firstIndex(of: op) else { continue }
            let t = String(text[..<i])
            guard !t.isEmpty, let th = Float(text[text.index(after: i)...]), th.isFinite else { return nil }
            return (t, above, th)
        }
        return nil
    }
}

/// Summary statistics of one trait curve (population standard deviation).
public struct TraitStats: Codable, Sendable, Equatable {
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double
    public init(mean: Double, std: Double, min: Double, max: Double) { self.mean = mean; self.std = std; self.min = min; self.max = max }
}

/// Pearson correlation between trait curves; `matrix[i][j]` pairs `traits[i]` and `traits[j]`.
public struct Correlations: Codable, Sendable, Equatable {
    public var traits: [String]
    public var matrix: [[Double]]
    public init(traits: [String], matrix: [[Double]]) { self.traits = traits; self.matrix = matrix }
}
