import Foundation
import PersonaFormats

/// How RoPE pairs dimensions: Hugging Face's rotate_half (i, i + d/2), or interleaved (2i, 2i+1)
/// as llama.cpp uses for GGUF `llama` weights (whose Q/K rows were permuted at conversion).
public enum RopeStyle: String, Sendable { case halfRotation, interleaved }

public enum Activation: String, Sendable { case silu, geluTanh, gelu, reluSquared, swigluOAI }

/// Llama-3 style RoPE frequency scaling.
public struct Llama3RopeScaling: Sendable, Equatable {
    public var factor: Double
    public var lowFreqFactor: Double
    public var highFreqFactor: Double
    public var originalMaxPositions: Double
}

/// YaRN (Qwen2.5 / Qwen3 long context, OLMo-3): each frequency between its extrapolated value (kept, fast
/// rotations) and its interpolated one (divided by `factor`, slow rotations), by a linear ramp over the dimensions
/// whose wavelength the original context holds between `betaSlow` and `betaFast` turns; cos and sin multiplied by
/// `attentionFactor`. Static: the same at every position, as transformers and llama.cpp compute it.
public struct YarnRope: Sendable, Equatable {
    public var factor: Double
    public var originalMaxPositions: Int
    public var betaFast: Double = 32
    public var betaSlow: Double = 1
    public var attentionFactor: Double
    /// The ramp's ends rounded outwards to whole dimensions (transformers' `truncate`, llama.cpp always).
    public var truncate = true

    /// The paper's default attention factor, 0.1 ln(factor) + 1 (llama.cpp's, whatever the file says).
    public static func defaultAttentionFactor(_ factor: Double, mscale: Double = 1) -> Double {
        factor <= 1 ? 1 : 0.1 * mscale * Foundation.log(factor) + 1
    }

    /// Per frequency pair i < dim / 2: the share of the extrapolated (unscaled) frequency.
    func extrapolationShare(dim: Int, base: Double) -> [Double] {
        func correction(_ turns: Double) -> Double {
            Double(dim) * Foundation.log(Double(originalMaxPositions) / (turns * 2 * Double.pi)) / (2 * Foundation.log(base))
        }
        var (low, high) = (correction(betaFast), correction(betaSlow))
        if truncate { (low, high) = (low.rounded(.down), high.rounded(.up)) }
        (low, high) = (max(low, 0), min(high, Double(dim - 1)))
        if low == high { high += 0.001 }
        return (0..<(dim / 2)).map { 1 - min(1, max(0, (Double($0) - low) / (high - low))) }
    }
}

/// Llama-4-style attention temperature (Ministral 3's llama_4_scaling_beta): each query times
/// 1 + beta ln(1 + floor(position / originalMaxPositions)), after RoPE; 1 within the original context.
public struct QueryTemperature: Sendable, Equatable {
    public var beta: Double
    public var originalMaxPositions: Int

    public init(beta: Double, originalMaxPositions: Int) {
        self.beta = beta
        self.originalMaxPositions = originalMaxPositions
    }

    /// The factor at `position`, in f32 as transformers computes it.
    func scale(position: Int) -> Float {
        1 + Float(beta) * Foundation.log(1 + (Float(position) / Float(originalMaxPositions)).rounded(.down))
    }
}

/// A mixture-of-experts MLP (Qwen3-MoE, Mixtral): a router (a linear map to one logit per expert) picks, per token,
/// the `perToken` experts of highest softmax probability; the MLP's output is their SwiGLU outputs weighted by those
/// probabilities (renormalised to sum to 1 when `normalizeTopK`).
public struct MixtureOfExperts: Sendable, Equatable {
    public var experts: Int
    public var perToken: Int
    /// Each expert's intermediate size (Qwen3-MoE's moe_intermediate_size; Mixtral's intermediate_size).
    public var intermediateSize: Int
    public var normalizeTopK: Bool
    /// Per layer: true where the MLP is the mixture, false where it is dense (Qwen3-MoE's mlp_only_layers).
    public var layers: [Bool]
    /// gpt-oss: the router adds a bias to its logits, and each expert's gate, up and down add biases.
    public var routerBias = false
    public var expertBias = false
    /// Qwen2-MoE: a shared SwiGLU expert of this width that every token runs, its output weighted by
    /// sigmoid(shared gate . x) and added to the routed experts'; nil: none.
    public var sharedIntermediateSize: Int? = nil
}

/// LongRoPE (Phi-3.5, the 128k Phi-3 models): frequency i divided by a factor of its own, and cos / sin multiplied by
/// `attentionFactor`. The short factors hold up to `originalMaxPositions`; past it transformers switches every position
/// to the long factors (and llama.cpp chooses by context size), so these models run up to there (see readRope).
public struct LongRope: Sendable, Equatable {
    public var shortFactors: [Double]
    public var longFactors: [Double]
    public var attentionFactor: Double
    public var originalMaxPositions: Int
    /// The model's whole context (max_position_embeddings, context_length), kept for export: `ModelConfig.maxPositions`
    /// stops at the original one.
    public var fullMaxPositions: Int
}

/// Where a block's RMSNorms sit: `pre` before attention and the MLP (Llama); `sandwich` before and after each
/// (Gemma-2, Gemma-3); `post` only after each, on what it adds to the residual, which enters them unnormalised (OLMo-2).
public enum NormPlacement: Sendable {
    case pre, sandwich, post
}

/// Everything the shared transformer forward needs, whatever file it came from.
public struct ModelConfig: Sendable {
    public var architecture: String            // registry key: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3, smollm3, phi3, olmo2, olmo3, granite, glm4, ...
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double = 10000
    public var ropeScaling: Llama3RopeScaling? = nil
    /// Linear RoPE scaling ("position interpolation"): every frequency divided by this factor, so position p turns
    /// as p / factor did. transformers' rope_type "linear"; llama.cpp's rope.scaling.factor (freq_scale = 1 / it).
    public var ropeLinearFactor: Double = 1
    public var longRope: LongRope? = nil
    public var yarn: YarnRope? = nil
    public var queryTemperature: QueryTemperature? = nil
    public var moe: MixtureOfExperts? = nil
    /// RoPE base of the sliding-window layers when they have their own, unscaled (Gemma-3's local layers: 1e4);
    /// nil when every layer turns with `ropeTheta` and its scaling.
    public var slidingRopeTheta: Double? = nil
    public var ropeStyle: RopeStyle = .halfRotation
    /// Partial rotary (Phi-4-mini: 96 of 128): RoPE turns the first `partialRotaryDim` dimensions of each head and
    /// passes the rest through; nil turns the whole head. transformers' `partial_rotary_factor` (head_dim x factor,
    /// truncated), llama.cpp's `rope.dimension_count`.
    public var partialRotaryDim: Int? = nil
    public var maxPositions: Int = 2048
    public var tieWordEmbeddings = false
    public var attentionBias = false
    public var qkNorm = false
    /// The q / k RMSNorm spans all heads of a token (OLMo-2: weights of qDim and kvDim), not each head (Qwen3, Gemma-3).
    public var qkNormAcrossHeads = false
    /// RMSNorm multiplies by (normOffset + w): 1 for Gemma's HF weights, 0 otherwise.
    public var normOffset: Float = 0
    /// Embeddings are multiplied by this (Gemma: sqrt(hidden); Granite: embedding_multiplier).
    public var embedScale: Float = 1
    /// What attention and the MLP add to the residual is multiplied by this (Granite's residual_multiplier).
    public var residualScale: Float = 1
    /// Logits are divided by this (Granite's logits_scaling).
    public var logitScale: Float = 1
    public var activation: Activation = .silu
    /// Where a block's RMSNorms sit (see NormPlacement).
    public var norms: NormPlacement = .pre
    public var attnLogitSoftcap: Float? = nil
    public var finalLogitSoftcap: Float? = nil
    /// Attention scores are scaled by attnScale (default 1/sqrt(headDim)).
    public var attnScale: Float
    public var slidingWindow: Int? = nil
    /// Per layer: true if the layer uses the sliding window.
    public var slidingLayers: [Bool] = []
    /// Phi-3, GPT-2, GPT-NeoX: q, k, v stored as one matrix (rows q | k | v; their biases as one vector).
    public var fusedProjections = false
    /// Phi-3, GLM-4: gate and up stored as one matrix (rows gate | up).
    public var fusedGateUp = false
    /// Cohere, GPT-2, GPT-NeoX: the residual-stream norms are LayerNorms (mean removed), not RMSNorms; eps is rmsNormEps.
    public var layerNorm = false
    /// GPT-2, GPT-NeoX: every norm (the LayerNorms) adds a bias.
    public var normBias = false
    /// Cohere: attention and the MLP both read the block's one normalised input, and both outputs join the residual.
    public var parallelBlock = false
    /// GPT-NeoX (use_parallel_residual): attention and the MLP both read the block's input, each through its own
    /// norm, and both outputs join the residual.
    public var parallelResidual = false
    /// The MLP is SwiGLU-style, down(act(gate x) * up x) (every family but these); false: down(act(up x)) (GPT-2, GPT-NeoX).
    public var gatedMLP = true
    /// GPT-2, GPT-NeoX, StarCoder2: the attention output adds a bias.
    public var attnOutputBias = false
    /// GPT-2, GPT-NeoX, StarCoder2: the MLP's up and down matrices add biases.
    public var mlpBias = false
    /// OLMo-1: the LayerNorms have no weights (nor biases): non-parametric.
    public var normWeights = true
    /// OLMo-1: q, k and v are clamped to [-clipQKV, clipQKV] after their projections.
    public var clipQKV: Float? = nil
    /// gpt-oss: each query head has a learned sink logit, a key every query sees whose value is zero (the softmax's
    /// denominator gains exp(sink)).
    public var attentionSinks = false
    /// gpt-oss's clamped SwiGLU (Activation.swigluOAI): gate clamped above at `swigluLimit`, up to +-it, then
    /// gate sigmoid(alpha gate) (up + 1).
    public var swigluAlpha: Float = 1.702
    public var swigluLimit: Float = 7
    /// Phi-1 / 1.5 / 2: the output head adds a bias to the logits.
    public var headBias = false
    /// GPT-2: a learned position embedding (maxPositions rows) joins the token embedding; no RoPE (noRopeLayers all set).
    public var learnedPositions = false
    /// Per layer: true if the layer applies no RoPE (SmolLM3's NoPE layers); empty: every layer does.
    public var noRopeLayers: [Bool] = []
    public var bosTokenId: Int? = nil
    public var eosTokenIds: [Int] = []

    public init(architecture: String, vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int,
                numHeads: Int, numKVHeads: Int, headDim: Int, rmsNormEps: Float) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim
        self.rmsNormEps = rmsNormEps
        self.attnScale = 1 / Float(headDim).squareRoot()
        // validate() refuses out-of-range layer counts with a message; a hostile config must not crash before that
        self.slidingLayers = Array(repeating: false, count: (0 ... 1 << 16).contains(numLayers) ? numLayers : 0)
    }

    public var qDim: Int { numHeads * headDim }
    public var kvDim: Int { numKVHeads * headDim }
    /// The dimensions of each head RoPE turns.
    public var ropeDim: Int { partialRotaryDim ?? headDim }

    /// Checks the numbers are usable; errors name the field and the file.
    public func validate(source: String) throws {
        func need(_ ok: Bool, _ what: String) throws {
            if !ok { throw ModelError("\(source): invalid config: \(what)") }
        }
        try need(vocabSize > 0 && vocabSize < 1 << 24, "vocab_size \(vocabSize)")
        try need(hiddenSize > 0 && hiddenSize < 1 << 17, "hidden_size \(hiddenSize)")
        try need(intermediateSize > 0 && intermediateSize < 1 << 20, "intermediate_size \(intermediateSize)")
        try need(numLayers > 0 && numLayers < 1024, "num_hidden_layers \(numLayers)")
        try need(numHeads > 0 && numHeads < 1024, "num_attention_heads \(numHeads)")
        try need(numKVHeads > 0 && numHeads % numKVHeads == 0, "num_key_value_heads \(numKVHeads) must divide num_attention_heads \(numHeads)")
        try need(headDim > 0 && headDim % 2 == 0 && headDim <= 1024, "head_dim \(headDim)")
        try need(maxPositions > 0, "max_position_embeddings \(maxPositions)")
        try need(rmsNormEps > 0 && rmsNormEps.isFinite, "rms_norm_eps \(rmsNormEps)")
        try need(slidingLayers.count == numLayers, "layer_types has \(slidingLayers.count) entries, expected \(numLayers)")
        if let m = moe {
            try need(m.experts > 0 && m.experts <= 4096 && m.perToken > 0 && m.perToken <= m.experts,
                     "num_experts \(m.experts) / num_experts_per_tok \(m.perToken)")
            try need(m.intermediateSize > 0 && m.intermediateSize < 1 << 20, "moe_intermediate_size \(m.intermediateSize)")
            try need(m.layers.count == numLayers, "the mixture's layers have \(m.layers.count) entries, expected \(numLayers)")
            if let s = m.sharedIntermediateSize { try need(s > 0 && s < 1 << 20, "shared_expert_intermediate_size \(s)") }
        }
        if let r = partialRotaryDim {
            try need(r > 0 && r % 2 == 0 && r <= headDim, "the rotary dimension \(r) must be even and within head_dim \(headDim)")
        }
        // the forward pass adds up / down biases and runs gpt-oss's clamped SwiGLU on these MLP forms only
        try need(!mlpBias || !gatedMLP, "MLP biases on a gated (SwiGLU) MLP are not supported")
        try need(activation != .swigluOAI || gatedMLP, "the clamped SwiGLU needs a gated MLP")
        try need(noRopeLayers.isEmpty || noRopeLayers.count == numLayers, "no_rope_layers has \(noRopeLayers.count) entries, expected \(numLayers)")
    }
}

public struct ModelError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// Typed access to a parsed config.json, with errors that name the key.
struct JSONConfig {
    let dict: [String: Any]
    let source: String

    init(url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError("\(url.path): cannot read config: \(error.localizedDescription)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data), let d = obj as? [String: Any] else {
            throw ModelError("\(url.path): not a JSON object")
        }
        // Multimodal wrappers keep the language model's config under text_config; their special-token ids (the
        // Gemma-3 wrapper's eos [1, 106]) stay at the top level, where generation reads them.
        if let text = d["text_config"] as? [String: Any], d["num_hidden_layers"] == nil {
            var merged = text
            for key in ["model_type", "bos_token_id", "eos_token_id", "pad_token_id"] where merged[key] == nil {
                merged[key] = d[key]
            }
            dict = merged
        } else {
            dict = d
        }
        source = url.path
    }

    init(dict: [String: Any], source: String) { self.dict = dict; self.source = source }

    func int(_ key: String) throws -> Int {
        guard let v = optInt(key) else { throw ModelError("\(source): missing or non-integer '\(key)'") }
        return v
    }
    func optInt(_ key: String) -> Int? {
        if let n = dict[key] as? NSNumber {
            let d = n.doubleValue
            guard d.isFinite, d == d.rounded(), abs(d) < 1e15 else { return nil }
            return Int(d)
        }
        return nil
    }
    func double(_ key: String) throws -> Double {
        guard let v = optDouble(key) else { throw ModelError("\(source): missing or non-numeric '\(key)'") }
        return v
    }
    func optDouble(_ key: String) -> Double? { (dict[key] as? NSNumber).map { $0.doubleValue } }
    func optBool(_ key: String) -> Bool? { dict[key] as? Bool }
    func optString(_ key: String) -> String? { dict[key] as? String }
    func optDict(_ key: String) -> [String: Any]? { dict[key] as? [String: Any] }
    /// Integer or list of integers (eos_token_id).
    func intList(_ key: String) -> [Int] {
        if let v = optInt(key) { return [v] }
        if let a = dict[key] as? [NSNumber] { return a.map { $0.intValue } }
        return []
    }
}
