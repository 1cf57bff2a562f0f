import Foundation
import PersonaFormats

/// One supported architecture: how its config reads and which tensors its checkpoint holds.
/// The forward pass itself is shared (Transformer.swift); an architecture only switches on the parts it uses.
protocol Architecture {
    /// Hugging Face `model_type` values (and `architectures` aliases) this file handles.
    static var hfModelTypes: [String] { get }
    /// GGUF `general.architecture` values this file handles.
    static var ggufArchitectures: [String] { get }
    static func config(hf: JSONConfig) throws -> ModelConfig
    static func config(gguf: GGUFConfig) throws -> ModelConfig
}

/// The registry of architectures; aliases reuse a type (mistral builds Llama).
public enum ArchitectureRegistry {
    static let all: [Architecture.Type] = [
        LlamaArchitecture.self, MistralArchitecture.self, Qwen2Architecture.self, Qwen3Architecture.self,
        GemmaArchitecture.self, Gemma2Architecture.self, Gemma3Architecture.self, SmolLM3Architecture.self,
        Phi3Architecture.self, OLMo2Architecture.self, GraniteArchitecture.self, Qwen3MoEArchitecture.self,
        MixtralArchitecture.self, OLMoEArchitecture.self, GLM4Architecture.self, CohereArchitecture.self,
        ErnieArchitecture.self, Exaone4Architecture.self, GPT2Architecture.self, GPTNeoXArchitecture.self,
        PhiArchitecture.self, StableLMArchitecture.self, Ministral3Architecture.self, OLMoArchitecture.self, StarCoder2Architecture.self,
        NemotronArchitecture.self, Qwen2MoEArchitecture.self, ArceeArchitecture.self, SeedOSSArchitecture.self,
        GptOssArchitecture.self,
    ]

    public static var supportedModelTypes: [String] { all.flatMap { $0.hfModelTypes }.sorted() }
    public static var supportedGGUFArchitectures: [String] { all.flatMap { $0.ggufArchitectures }.sorted() }

    static func forHF(_ modelType: String) -> Architecture.Type? { all.first { $0.hfModelTypes.contains(modelType) } }
    static func forGGUF(_ arch: String) -> Architecture.Type? { all.first { $0.ggufArchitectures.contains(arch) } }

    /// Parses a HF config.json into a ModelConfig.
    public static func config(hfConfigAt url: URL) throws -> ModelConfig {
        let j = try JSONConfig(url: url)
        guard let mt = j.optString("model_type") else { throw ModelError("\(url.path): missing 'model_type'") }
        guard let a = forHF(mt) else {
            throw ModelError("\(url.path): unknown architecture model_type '\(mt)' (supported: \(supportedModelTypes.joined(separator: ", ")))")
        }
        let c = try a.config(hf: j)
        try c.validate(source: url.path)
        return c
    }

    /// Reads a GGUF file's metadata into a ModelConfig.
    public static func config(gguf: GGUFFile) throws -> ModelConfig {
        let g = GGUFConfig(file: gguf)
        guard let arch = gguf.architecture else { throw ModelError("\(gguf.url.path): missing general.architecture") }
        guard let a = forGGUF(arch) else {
            throw ModelError("\(gguf.url.path): unknown architecture '\(arch)' (supported: \(supportedGGUFArchitectures.joined(separator: ", ")))")
        }
        let c = try a.config(gguf: g)
        try c.validate(source: gguf.url.path)
        return c
    }
}

/// Fields shared by every Llama-like HF config.
func baseConfig(_ j: JSONConfig, architecture: String) throws -> ModelConfig {
    let hidden = try j.int("hidden_size")
    let heads = try j.int("num_attention_heads")
    guard heads > 0 else { throw ModelError("\(j.source): num_attention_heads must be positive") }
    // Checked before anything is sized by it (the architectures build per-layer arrays next).
    let layers = try j.int("num_hidden_layers")
    guard (1 ..< 1024).contains(layers) else { throw ModelError("\(j.source): invalid config: num_hidden_layers \(layers)") }
    var c = ModelConfig(
        architecture: architecture,
        vocabSize: try j.int("vocab_size"),
        hiddenSize: hidden,
        intermediateSize: try j.int("intermediate_size"),
        numLayers: layers,
        numHeads: heads,
        numKVHeads: j.optInt("num_key_value_heads") ?? heads,
        headDim: j.optInt("head_dim") ?? hidden / heads,
        rmsNormEps: Float(j.optDouble("rms_norm_eps") ?? 1e-6))
    c.maxPositions = j.optInt("max_position_embeddings") ?? 2048
    c.tieWordEmbeddings = j.optBool("tie_word_embeddings") ?? false
    c.bosTokenId = j.optInt("bos_token_id")
    c.eosTokenIds = j.intList("eos_token_id")
    try readRope(j, into: &c)
    // of these families only Phi-3's (Phi-4-mini), GLM-4's, GPT-NeoX's, Phi-2's, StableLM's and Nemotron's attention
    // split the head; the others turn all of it
    if let r = c.partialRotaryDim, !["phi3", "glm4", "gpt_neox", "phi", "stablelm", "nemotron"].contains(architecture) {
        throw ModelError("\(j.source): unsupported partial_rotary_factor for \(architecture) (RoPE on \(r) of \(c.headDim) dimensions)")
    }
    return c
}

extension JSONConfig {
    /// The config with `partial_rotary_factor` set to `factor` where it names none (at the top level, in
    /// rope_parameters or in rope_scaling): the default transformers' config class of the family sets.
    func withPartialRotary(default factor: Double) -> JSONConfig {
        let named = ["rope_parameters", "rope_scaling"].contains { (dict[$0] as? [String: Any])?["partial_rotary_factor"] != nil }
        guard !named, dict["partial_rotary_factor"] == nil else { return self }
        var d = dict
        d["partial_rotary_factor"] = factor
        return JSONConfig(dict: d, source: source)
    }
}

/// Mistral, Phi-3, StarCoder2: `sliding_window`, when positive, on every layer.
func readSlidingWindowOnEveryLayer(_ j: JSONConfig, into c: inout ModelConfig) {
    if let w = j.optInt("sliding_window"), w > 0 {
        c.slidingWindow = w
        c.slidingLayers = Array(repeating: true, count: c.numLayers)
    }
}

/// The SwiGLU blocks (Llama, Mistral, Qwen2, Qwen3) compute silu; a config naming another `hidden_act` would have
/// run as silu without a word, so it is refused.
func requireSiLU(_ j: JSONConfig) throws {
    if let a = j.optString("hidden_act"), a != "silu", a != "swish" {
        throw ModelError("\(j.source): unsupported hidden_act '\(a)' for \(j.optString("model_type") ?? "this architecture") (its MLP is SwiGLU: silu)")
    }
}

/// RoPE base and scaling: top-level `rope_theta` + `rope_scaling` (older) or `rope_parameters` (newer transformers).
func readRope(_ j: JSONConfig, into c: inout ModelConfig) throws {
    var params = j.optDict("rope_parameters")
    // Per-layer-type parameters (newer Gemma-style configs): take the full-attention entry.
    if let p = params, p["rope_theta"] == nil, let full = (p["full_attention"] ?? p.values.first) as? [String: Any] {
        params = full
    }
    let theta = (params?["rope_theta"] as? NSNumber)?.doubleValue ?? j.optDouble("rope_theta") ?? 10000
    c.ropeTheta = theta
    // partial rotary: in rope_parameters (transformers 5), rope_scaling, or at the top level (the Hub's configs)
    let partial = (params?["partial_rotary_factor"] as? NSNumber)?.doubleValue
        ?? (j.optDict("rope_scaling")?["partial_rotary_factor"] as? NSNumber)?.doubleValue ?? j.optDouble("partial_rotary_factor") ?? 1
    if partial != 1 {
        let dim = Int(Double(c.headDim) * partial)   // transformers: int(head_dim * factor)
        guard partial > 0, partial < 1, dim > 0, dim % 2 == 0 else {
            throw ModelError("\(j.source): invalid partial_rotary_factor \(partial) (head_dim \(c.headDim) x it must be a positive even number below head_dim)")
        }
        c.partialRotaryDim = dim
    }
    let scaling = j.optDict("rope_scaling") ?? params
    guard let s = scaling else { return }
    let type = (s["rope_type"] as? String) ?? (s["type"] as? String) ?? "default"
    switch type {
    case "default", "linear" where ((s["factor"] as? NSNumber)?.doubleValue ?? 1) == 1:
        return
    case "linear":
        guard let f = (s["factor"] as? NSNumber)?.doubleValue, f.isFinite, f > 0 else {
            throw ModelError("\(j.source): rope scaling linear needs a positive 'factor'")
        }
        c.ropeLinearFactor = f
    case "llama3":
        func num(_ k: String) throws -> Double {
            guard let v = (s[k] as? NSNumber)?.doubleValue else { throw ModelError("\(j.source): rope scaling llama3 needs '\(k)'") }
            return v
        }
        c.ropeScaling = Llama3RopeScaling(factor: try num("factor"), lowFreqFactor: try num("low_freq_factor"),
                                          highFreqFactor: try num("high_freq_factor"),
                                          originalMaxPositions: try num("original_max_position_embeddings"))
    case "longrope", "su":
        // transformers' _compute_longrope_parameters, for positions up to original_max_position_embeddings
        guard let orig = (s["original_max_position_embeddings"] as? NSNumber)?.intValue ?? j.optInt("original_max_position_embeddings"), orig > 0 else {
            throw ModelError("\(j.source): rope scaling longrope needs 'original_max_position_embeddings'")
        }
        func factors(_ k: String) throws -> [Double] {
            guard let list = s[k] as? [Any], list.count == c.ropeDim / 2,
                  case let v = list.compactMap({ ($0 as? NSNumber)?.doubleValue }), v.count == list.count, v.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ModelError("\(j.source): rope scaling longrope needs '\(k)': \(c.ropeDim / 2) positive numbers (the rotary dimension / 2)")
            }
            return v
        }
        let factor = (s["factor"] as? NSNumber)?.doubleValue ?? Double(c.maxPositions) / Double(orig)
        let attention = (s["attention_factor"] as? NSNumber)?.doubleValue
            ?? (factor <= 1 ? 1 : (1 + Foundation.log(factor) / Foundation.log(Double(orig))).squareRoot())
        c.longRope = LongRope(shortFactors: try factors("short_factor"), longFactors: try factors("long_factor"),
                              attentionFactor: attention, originalMaxPositions: orig, fullMaxPositions: c.maxPositions)
        c.maxPositions = min(c.maxPositions, orig)
    case "yarn":
        // transformers' _compute_yarn_parameters; the original context: the config's top-level value first (as
        // standardize_rope_params), then the scaling's own, then max_position_embeddings
        let orig = j.optInt("original_max_position_embeddings") ?? (s["original_max_position_embeddings"] as? NSNumber)?.intValue ?? c.maxPositions
        func num(_ k: String) -> Double? { (s[k] as? NSNumber)?.doubleValue }
        let factor = num("factor") ?? Double(c.maxPositions) / Double(orig)
        guard orig > 0, factor.isFinite, factor >= 1 else {
            throw ModelError("\(j.source): rope scaling yarn needs 'factor' >= 1 and a positive original_max_position_embeddings")
        }
        var attention = num("attention_factor")
        if attention == nil, let m = num("mscale"), let all = num("mscale_all_dim"), m != 0, all != 0 {
            attention = YarnRope.defaultAttentionFactor(factor, mscale: m) / YarnRope.defaultAttentionFactor(factor, mscale: all)
        }
        // transformers takes a falsy beta as the default
        c.yarn = YarnRope(factor: factor, originalMaxPositions: orig, betaFast: num("beta_fast").flatMap { $0 == 0 ? nil : $0 } ?? 32,
                          betaSlow: num("beta_slow").flatMap { $0 == 0 ? nil : $0 } ?? 1,
                          attentionFactor: attention ?? YarnRope.defaultAttentionFactor(factor),
                          truncate: (s["truncate"] as? Bool) ?? true)
    default:
        throw ModelError("\(j.source): unsupported rope scaling type '\(type)' (supported: default, linear, llama3, longrope, yarn)")
    }
}

/// Typed access to GGUF metadata for `{arch}.*` keys.
struct GGUFConfig {
    let file: GGUFFile
    /// llama.cpp reads `rope.scaling.yarn_beta_fast` / `yarn_beta_slow` / `yarn_log_multiplier` for this architecture
    /// (mistral3); elsewhere it reads none, so the reader refuses them when they ask for other values.
    var yarnKeysRead = false
    var arch: String { file.architecture ?? "" }
    var source: String { file.url.path }

    func int(_ key: String) throws -> Int {
        guard let v = file.metadata["\(arch).\(key)"]?.int else { throw ModelError("\(source): missing metadata '\(arch).\(key)'") }
        return v
    }
    /// llama.cpp's RoPE scaling keys: `rope.scaling.factor` (or the older `rope.scale_linear`) makes freq_scale =
    /// 1 / factor, and `rope.scaling.type` (default linear) says how it is applied. Linear is position interpolation;
    /// yarn and longrope add more than a scale, so they are refused rather than run as plain RoPE (they used to be
    /// ignored: a file with a scaling factor silently ran unscaled, every position's rotation wrong).
    func readRopeScaling(_ c: inout ModelConfig) throws {
        let type = file.metadata["\(arch).rope.scaling.type"]?.string ?? "linear"
        let factor = optDouble("rope.scaling.factor") ?? optDouble("rope.scale_linear") ?? 0
        if type == "none" || factor == 0 || factor == 1 { return }
        guard factor.isFinite, factor > 0 else { throw ModelError("\(source): invalid metadata: \(arch).rope.scaling.factor \(factor)") }
        if type == "yarn" {
            // as llama.cpp runs it: betas 32 / 1 and the attention factor 0.1 ln(factor) + 1 (times rope.scaling.attn_factor)
            // whatever the yarn_* keys say (it reads none of them), so a file whose keys say otherwise is refused
            guard factor >= 1 else { throw ModelError("\(source): invalid metadata: \(arch).rope.scaling.factor \(factor) for yarn (must be >= 1)") }
            let standard = YarnRope.defaultAttentionFactor(factor)
            if yarnKeysRead {
                // llama-context.cpp: the betas as given; attention factor mscale(f, 1) / mscale(f, log_mul) when
                // yarn_log_multiplier is set (transformers' mscale / mscale_all_dim with mscale 1), else mscale(f, 1)
                let logMul = optDouble("rope.scaling.yarn_log_multiplier") ?? 0
                for key in ["rope.scaling.attn_factor", "rope.scaling.yarn_attn_factor"] {
                    if let v = optDouble(key), v != 1 { throw ModelError("\(source): unsupported metadata: \(arch).\(key) \(v) with yarn") }
                }
                if let v = optDouble("rope.scaling.yarn_ext_factor"), v >= 0, v != 1 {
                    throw ModelError("\(source): unsupported metadata: \(arch).rope.scaling.yarn_ext_factor \(v)")
                }
                let orig = optInt("rope.scaling.original_context_length") ?? c.maxPositions
                guard orig > 0, logMul.isFinite else { throw ModelError("\(source): invalid metadata: \(arch).rope.scaling.original_context_length \(orig)") }
                c.yarn = YarnRope(factor: factor, originalMaxPositions: orig, betaFast: optDouble("rope.scaling.yarn_beta_fast") ?? 32,
                                  betaSlow: optDouble("rope.scaling.yarn_beta_slow") ?? 1,
                                  attentionFactor: logMul != 0 ? standard / YarnRope.defaultAttentionFactor(factor, mscale: logMul) : standard)
                return
            }
            for (key, value) in [("yarn_beta_fast", 32.0), ("yarn_beta_slow", 1.0), ("yarn_ext_factor", 1.0), ("yarn_log_multiplier", 0), ("yarn_attn_factor", standard)] {
                if let v = optDouble("rope.scaling.\(key)"), abs(v - value) > 1e-5 * max(1, value), !(key == "yarn_ext_factor" && v < 0) {
                    throw ModelError("\(source): unsupported metadata: \(arch).rope.scaling.\(key) \(v) (llama.cpp runs yarn with \(value) whatever the file says)")
                }
            }
            let orig = optInt("rope.scaling.original_context_length") ?? c.maxPositions
            guard orig > 0 else { throw ModelError("\(source): invalid metadata: \(arch).rope.scaling.original_context_length \(orig)") }
            c.yarn = YarnRope(factor: factor, originalMaxPositions: orig, attentionFactor: standard * (optDouble("rope.scaling.attn_factor") ?? 1))
            return
        }
        guard type == "linear" else {
            throw ModelError("\(source): unsupported rope scaling type '\(type)' (factor \(factor)); supported: none, linear, yarn")
        }
        // ggml multiplies cos and sin by it (mscale): not plain linear scaling
        if let a = optDouble("rope.scaling.attn_factor"), a != 1 {
            throw ModelError("\(source): unsupported metadata: \(arch).rope.scaling.attn_factor \(a) with linear rope scaling")
        }
        c.ropeLinearFactor = factor
    }

    /// The sliding window as llama.cpp reads it for gemma3, olmo2, cohere2 and exaone4: none without
    /// `attention.sliding_window` (or 0, unless `defaultWindow`); which layers slide from
    /// `attention.sliding_window_pattern`, a per-layer list of booleans or every n-th layer full (n from the file, else
    /// `every`; 0: every layer slides); the sliding layers' RoPE base from `rope.freq_base_swa`, else `defaultBase`,
    /// unscaled. `onlySlidingLayersTurn` (cohere2, exaone4): the full layers use no RoPE and the sliding ones turn with
    /// the model's own scaling, so they share its table unless the file gives them another base.
    func readSlidingWindow(_ c: inout ModelConfig, every: Int, defaultBase: Double, defaultWindow: Int? = nil,
                           onlySlidingLayersTurn: Bool = false) throws {
        guard let window = optInt("attention.sliding_window") ?? defaultWindow, window > 0 else { return }
        c.slidingWindow = window
        let key = "\(arch).attention.sliding_window_pattern"
        if let list = file.metadata[key]?.array {
            guard list.count == c.numLayers, list.allSatisfy({ $0.bool != nil }) else {
                throw ModelError("\(source): invalid metadata: \(key) has \(list.count) entries, expected \(c.numLayers) booleans")
            }
            c.slidingLayers = list.map { $0.bool! }
        } else {
            let n = optInt("attention.sliding_window_pattern") ?? every
            guard n >= 0 else { throw ModelError("\(source): invalid metadata: \(key) \(n)") }
            c.slidingLayers = (0..<c.numLayers).map { n == 0 || $0 % n < n - 1 }
        }
        c.slidingRopeTheta = optDouble("rope.freq_base_swa") ?? defaultBase
        if onlySlidingLayersTurn {
            c.noRopeLayers = c.slidingLayers.map { !$0 }
            if c.slidingRopeTheta == c.ropeTheta { c.slidingRopeTheta = nil }
            if c.slidingRopeTheta != nil, c.ropeLinearFactor != 1 || c.yarn != nil {
                throw ModelError("\(source): unsupported metadata: \(arch).rope.freq_base_swa with rope scaling (llama.cpp scales the sliding layers too)")
            }
        }
    }

    /// The biases llama.cpp loads only where the file has them (TENSOR_NOT_REQUIRED), told by layer 0's tensors: q / k /
    /// v's (attn_q.bias), the attention output's and, for a plain MLP (`mlp`), up's and down's (ffn_up.bias).
    func readOptionalBiases(_ c: inout ModelConfig, mlp: Bool) {
        c.attentionBias = file.tensor("blk.0.attn_q.bias") != nil
        c.attnOutputBias = file.tensor("blk.0.attn_output.bias") != nil
        if mlp { c.mlpBias = file.tensor("blk.0.ffn_up.bias") != nil }
    }

    func optInt(_ key: String) -> Int? { file.metadata["\(arch).\(key)"]?.int }
    func optDouble(_ key: String) -> Double? { file.metadata["\(arch).\(key)"]?.double }

    /// Fields shared by every Llama-like GGUF.
    func base(architecture: String) throws -> ModelConfig {
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        guard heads > 0 else { throw ModelError("\(source): \(arch).attention.head_count must be positive") }
        let vocab = file.metadata["\(arch).vocab_size"]?.int
            ?? file.metadata["tokenizer.ggml.tokens"]?.array?.count
            ?? file.tensor("token_embd.weight")?.shape.first
        guard let vocab else { throw ModelError("\(source): cannot tell the vocabulary size") }
        let layers = try int("block_count")
        guard (1 ..< 1024).contains(layers) else { throw ModelError("\(source): invalid metadata: \(arch).block_count \(layers)") }
        var c = ModelConfig(
            architecture: architecture, vocabSize: vocab, hiddenSize: hidden,
            intermediateSize: try int("feed_forward_length"), numLayers: layers,
            numHeads: heads, numKVHeads: optInt("attention.head_count_kv") ?? heads,
            headDim: optInt("attention.key_length") ?? hidden / heads,
            rmsNormEps: Float(optDouble("attention.layer_norm_rms_epsilon") ?? 1e-5))
        c.maxPositions = optInt("context_length") ?? 2048
        c.ropeTheta = optDouble("rope.freq_base") ?? 10000
        try readRopeScaling(&c)
        // a mixture of experts (Mixtral's llama files, qwen3moe) as llama.cpp builds it: every layer, the chosen
        // weights renormalised, experts as wide as expert_feed_forward_length (else the MLP's width)
        if let e = optInt("expert_count"), e > 0 {
            guard let k = optInt("expert_used_count"), k > 0, k <= e else {
                throw ModelError("\(source): a mixture of experts needs \(arch).expert_used_count between 1 and \(arch).expert_count \(e)")
            }
            c.moe = MixtureOfExperts(experts: e, perToken: k, intermediateSize: optInt("expert_feed_forward_length") ?? c.intermediateSize,
                                     normalizeTopK: true, layers: Array(repeating: true, count: c.numLayers))
        }
        if let r = optInt("rope.dimension_count"), r != c.headDim {   // partial rotary: ggml turns the first r
            guard arch != "llama" else {   // as llama.cpp ("invalid n_rot")
                throw ModelError("\(source): unsupported metadata: \(arch).rope.dimension_count \(r) is not the head size \(c.headDim) (llama.cpp refuses partial rotary in a llama file)")
            }
            guard r > 0, r < c.headDim, r % 2 == 0 else {
                throw ModelError("\(source): invalid metadata: \(arch).rope.dimension_count \(r) (head size \(c.headDim))")
            }
            c.partialRotaryDim = r
        }
        c.tieWordEmbeddings = file.tensor("output.weight") == nil
        c.bosTokenId = file.metadata["tokenizer.ggml.bos_token_id"]?.int
        c.eosTokenIds = [file.metadata["tokenizer.ggml.eos_token_id"]?.int, file.metadata["tokenizer.ggml.eot_token_id"]?.int].compactMap { $0 }
        return c
    }
}
