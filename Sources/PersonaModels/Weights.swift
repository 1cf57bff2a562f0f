import Foundation
import PersonaFormats
import PersonaTensor

/// Weights of one decoder block. Shapes in [rows, cols] = [out, in] (PyTorch Linear convention).
struct LayerWeights {
    var attnNorm: [Float]?           // (hidden); nil: post norms only (OLMo-2)
    var attnNormBias: [Float]? = nil // (hidden), GPT-2 / GPT-NeoX LayerNorms
    var wq: WeightMatrix             // (heads * headDim, hidden)
    var wk: WeightMatrix             // (kvHeads * headDim, hidden)
    var wv: WeightMatrix             // (kvHeads * headDim, hidden)
    var wo: WeightMatrix             // (hidden, heads * headDim)
    var bq: [Float]?, bk: [Float]?, bv: [Float]?
    var qNorm: [Float]?, kNorm: [Float]?   // (headDim), Qwen3; (qDim), (kvDim) across heads, OLMo-2
    var postAttnNorm: [Float]?       // (hidden), Gemma-2
    var ffnNorm: [Float]?            // (hidden); nil: post norms only
    var ffnNormBias: [Float]? = nil  // (hidden), GPT-2 / GPT-NeoX
    var postFFNorm: [Float]?         // (hidden), Gemma-2
    var gate: WeightMatrix           // (intermediate, hidden)
    var up: WeightMatrix             // (intermediate, hidden)
    var down: WeightMatrix           // (hidden, intermediate)
    /// GPT-2 / GPT-NeoX: biases of the attention output (hidden), the up matrix (intermediate) and down (hidden).
    var bo: [Float]? = nil, bUp: [Float]? = nil, bDown: [Float]? = nil
    /// A mixture-of-experts layer: the router (experts, hidden) and each expert's SwiGLU; gate / up / down above are
    /// then expert 0's, unused.
    var router: WeightMatrix? = nil
    var experts: [ExpertWeights]? = nil
    /// gpt-oss: each head's sink logit (heads); the router's bias (experts).
    var sinks: [Float]? = nil
    var routerBias: [Float]? = nil
    /// Qwen2-MoE's shared expert and its gate (hidden).
    var shared: ExpertWeights? = nil
    var sharedGate: [Float]? = nil
}

struct ExpertWeights {
    var gate, up, down: WeightMatrix   // (moe intermediate, hidden) x 2, (hidden, moe intermediate)
    var gateBias: [Float]? = nil, upBias: [Float]? = nil, downBias: [Float]? = nil   // gpt-oss
}

struct ModelWeights {
    var embed: WeightMatrix          // (vocab, hidden)
    var layers: [LayerWeights]
    var finalNorm: [Float]           // (hidden)
    var finalNormBias: [Float]? = nil  // (hidden), GPT-2 / GPT-NeoX
    var positions: WeightMatrix? = nil // (maxPositions, hidden), GPT-2's learned position embedding
    var lmHead: WeightMatrix         // (vocab, hidden); the embedding when tied
    var lmHeadBias: [Float]? = nil   // (vocab), Phi-2
    var ropeFreqFactors: [Float]?    // (headDim / 2), GGUF Llama-3 rope_freqs
}

/// Tensor names of a checkpoint family.
enum TensorNaming {
    case huggingFace, gguf

    func name(_ part: String, layer: Int? = nil) -> String {
        switch self {
        case .huggingFace:
            let hf: [String: String] = [
                "embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "lm_head": "lm_head.weight",
                "attn_norm": "input_layernorm.weight", "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight",
                "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight", "q_bias": "self_attn.q_proj.bias",
                "k_bias": "self_attn.k_proj.bias", "v_bias": "self_attn.v_proj.bias", "q_norm": "self_attn.q_norm.weight",
                "k_norm": "self_attn.k_norm.weight", "post_attn_norm": "post_attention_layernorm.weight",
                "ffn_norm_llama": "post_attention_layernorm.weight", "ffn_norm_gemma2": "pre_feedforward_layernorm.weight",
                "post_ffn_norm": "post_feedforward_layernorm.weight", "gate": "mlp.gate_proj.weight",
                "up": "mlp.up_proj.weight", "down": "mlp.down_proj.weight",
                "qkv": "self_attn.qkv_proj.weight", "gate_up": "mlp.gate_up_proj.weight",
                // the names GPT-2 and GPT-NeoX checkpoints take under ClassicTensors
                "qkv_bias": "self_attn.qkv_proj.bias", "o_bias": "self_attn.o_proj.bias", "up_bias": "mlp.up_proj.bias",
                "down_bias": "mlp.down_proj.bias", "attn_norm_bias": "input_layernorm.bias",
                "ffn_norm_bias": "post_attention_layernorm.bias", "final_norm_bias": "model.norm.bias",
                "positions": "model.embed_positions.weight", "lm_head_bias": "lm_head.bias",
            ]
            let n = hf[part]!
            return layer.map { "model.layers.\($0).\(n)" } ?? n
        case .gguf:
            let g: [String: String] = [
                "embed": "token_embd.weight", "final_norm": "output_norm.weight", "lm_head": "output.weight",
                "attn_norm": "attn_norm.weight", "q": "attn_q.weight", "k": "attn_k.weight", "v": "attn_v.weight",
                "o": "attn_output.weight", "q_bias": "attn_q.bias", "k_bias": "attn_k.bias", "v_bias": "attn_v.bias",
                "q_norm": "attn_q_norm.weight", "k_norm": "attn_k_norm.weight", "post_attn_norm": "post_attention_norm.weight",
                "ffn_norm_llama": "ffn_norm.weight", "ffn_norm_gemma2": "ffn_norm.weight", "post_ffn_norm": "post_ffw_norm.weight",
                "gate": "ffn_gate.weight", "up": "ffn_up.weight", "down": "ffn_down.weight",
                "qkv": "attn_qkv.weight", "gate_up": "ffn_up.weight",
                "qkv_bias": "attn_qkv.bias", "o_bias": "attn_output.bias", "up_bias": "ffn_up.bias",
                "down_bias": "ffn_down.bias", "attn_norm_bias": "attn_norm.bias", "ffn_norm_bias": "ffn_norm.bias",
                "final_norm_bias": "output_norm.bias", "positions": "position_embd.weight", "lm_head_bias": "output.bias",
            ]
            let n = g[part]!
            return layer.map { "blk.\($0).\(n)" } ?? n
        }
    }
}

extension WeightMatrix {
    /// Rows `r` of this matrix, sharing its storage.
    func rows(_ r: Range<Int>) -> WeightMatrix {
        precondition(r.lowerBound >= 0 && r.upperBound <= rows, "rows \(r) out of 0..<\(rows)")
        return WeightMatrix(data: data + r.lowerBound * rowBytes, dtype: dtype, rows: r.count, cols: cols, owner: owner)
    }
}

/// Reads tensors by name, checking shapes, and remembers which ones were used so that
/// unexpected tensors are reported (strict loading).
final class WeightReader {
    let store: TensorStore
    let source: String
    private(set) var used = Set<String>()
    /// The name a tensor has in the file, for messages (a multimodal checkpoint's language model is renamed).
    let stored: (String) -> String

    init(store: TensorStore, source: String) {
        self.store = store
        self.source = source
        stored = (store as? RenamedTensors)?.storedName ?? { $0 }
    }

    func has(_ name: String) -> Bool { store.tensor(name) != nil }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        guard let t = store.tensor(name) else { throw ModelError("\(source): missing tensor '\(stored(name))'") }
        guard t.shape == [rows, cols] else {
            throw ModelError("\(source): tensor '\(stored(name))' has shape \(t.shape), expected [\(rows), \(cols)]")
        }
        guard let rb = t.dtype.rowBytes(cols), rb * rows == t.byteCount else {
            throw ModelError("\(source): tensor '\(stored(name))' (\(t.dtype)) has \(t.byteCount) bytes, which does not fit shape [\(rows), \(cols)]")
        }
        used.insert(name)
        return WeightMatrix(data: t.data, dtype: t.dtype, rows: rows, cols: cols, owner: t.owner)
    }

    /// A 3-D tensor [n, rows, cols] (stacked experts) as one matrix of n * rows rows; the caller slices it by rows.
    func stacked(_ name: String, count n: Int, rows: Int, cols: Int) throws -> WeightMatrix {
        guard let t = store.tensor(name) else { throw ModelError("\(source): missing tensor '\(stored(name))'") }
        guard t.shape == [n, rows, cols] else {
            throw ModelError("\(source): tensor '\(stored(name))' has shape \(t.shape), expected [\(n), \(rows), \(cols)]")
        }
        guard let rb = t.dtype.rowBytes(cols), rb * rows * n == t.byteCount else {
            throw ModelError("\(source): tensor '\(stored(name))' (\(t.dtype)) has \(t.byteCount) bytes, which does not fit shape [\(n), \(rows), \(cols)]")
        }
        used.insert(name)
        return WeightMatrix(data: t.data, dtype: t.dtype, rows: n * rows, cols: cols, owner: t.owner)
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        guard let t = store.tensor(name) else { throw ModelError("\(source): missing tensor '\(stored(name))'") }
        guard t.shape == [count] else {
            throw ModelError("\(source): tensor '\(stored(name))' has shape \(t.shape), expected [\(count)]")
        }
        used.insert(name)
        let m = WeightMatrix(data: t.data, dtype: t.dtype, rows: 1, cols: count, owner: t.owner)
        return m.rowArray(0)
    }

    func optionalVector(_ name: String, count: Int) throws -> [Float]? {
        has(name) ? try vector(name, count: count) : nil
    }

    /// Tensors present in the file but not consumed, minus names known to be harmless buffers.
    func unexpected(ignoring ignorable: (String) -> Bool) -> [String] {
        store.tensorNames.filter { !used.contains($0) && !ignorable($0) }.map(stored)
    }
}

/// The language model of a multimodal checkpoint (Gemma-3's, and LLaVA-style wrappers') under the causal LM's
/// names. transformers 4.x saved it as `language_model.model.*` and `language_model.lm_head.weight` (the Hub's
/// files), 5.x as `model.language_model.*` and `lm_head.weight`. The vision tower and projector are left out:
/// PersonaScope reads and steers text.
final class LanguageModelTensors: RenamedTensors {
    let base: TensorStore
    let prefix: String      // what stands for "model."
    let head: String        // what stands for "lm_head.weight"
    let tensorNames: [String]

    /// The wrapper's language model, when `store` is one (it holds a prefixed embedding).
    static func wrapping(_ store: TensorStore) -> LanguageModelTensors? {
        for (prefix, head) in [("language_model.model.", "language_model.lm_head.weight"), ("model.language_model.", "lm_head.weight")]
        where store.tensor(prefix + "embed_tokens.weight") != nil {
            return LanguageModelTensors(base: store, prefix: prefix, head: head)
        }
        return nil
    }

    private init(base: TensorStore, prefix: String, head: String) {
        self.base = base
        self.prefix = prefix
        self.head = head
        tensorNames = base.tensorNames.compactMap { name in
            if name == head { return "lm_head.weight" }
            return name.hasPrefix(prefix) ? "model." + name.dropFirst(prefix.count) : nil
        }.sorted()
    }

    func storedName(_ name: String) -> String {
        if name == "lm_head.weight" { return head }
        return name.hasPrefix("model.") ? prefix + name.dropFirst("model.".count) : name
    }

    func tensor(_ name: String) -> TensorInfo? {
        guard name == "lm_head.weight" || name.hasPrefix("model.") else { return nil }
        return base.tensor(storedName(name))
    }
}

func loadWeights(_ c: ModelConfig, reader r: WeightReader, naming n: TensorNaming) throws -> ModelWeights {
    let D = c.hiddenSize, F = c.intermediateSize
    // Per-layer norm names of an architecture's own, in place of the naming's: GLM-4's HF sandwich
    // (post_self_attn_layernorm after attention, post_attention_layernorm before the MLP, post_mlp_layernorm after it);
    // llama.cpp's seed_oss and gpt-oss name the MLP's norm post_attention_norm
    let layerPrefix = { (l: Int) in n == .gguf ? "blk.\(l)." : "model.layers.\(l)." }
    let ownNorms: [String: String]? =
        n == .huggingFace && c.architecture == "glm4"
            ? ["post_attn_norm": "post_self_attn_layernorm.weight", "ffn_norm_gemma2": "post_attention_layernorm.weight",
               "post_ffn_norm": "post_mlp_layernorm.weight"]
        : n == .gguf && ["seed_oss", "gpt_oss"].contains(c.architecture) ? ["ffn_norm_llama": "post_attention_norm.weight"]
        : nil
    // Mixtral's Hub files keep the mixture under block_sparse_moe (w1 gate, w3 up, w2 down), Qwen3-MoE's under mlp
    let hfMoePrefix = c.architecture == "mixtral" && r.has("model.layers.0.block_sparse_moe.gate.weight") ? "block_sparse_moe" : "mlp"
    /// The router (read as gate above) and the experts of layer l: per-expert tensors (the Hub's), the stacked ones
    /// transformers 5 saves (gate_up_proj [E, 2F, D], down_proj [E, D, F]), or GGUF's ffn_*_exps.
    func withExperts(_ lw: LayerWeights, layer l: Int) throws -> LayerWeights {
        let moe = c.moe!, E = moe.experts, Fe = moe.intermediateSize
        var lw = lw
        lw.router = lw.gate
        var experts: [ExpertWeights] = []
        if n == .gguf {
            let g = try r.stacked("blk.\(l).ffn_gate_exps.weight", count: E, rows: Fe, cols: D)
            let u = try r.stacked("blk.\(l).ffn_up_exps.weight", count: E, rows: Fe, cols: D)
            let d = try r.stacked("blk.\(l).ffn_down_exps.weight", count: E, rows: D, cols: Fe)
            for e in 0..<E {
                experts.append(ExpertWeights(gate: g.rows(e * Fe ..< (e + 1) * Fe), up: u.rows(e * Fe ..< (e + 1) * Fe),
                                             down: d.rows(e * D ..< (e + 1) * D)))
            }
        } else {
            let p = "model.layers.\(l).\(hfMoePrefix).experts."
            // GraniteMoE's Hub files: block_sparse_moe.input_linear [E, 2F, D] (gate | up) and output_linear [E, D, F]
            let granite = "model.layers.\(l).block_sparse_moe."
            let (gateUp, down) = c.architecture == "granitemoe" ? (granite + "input_linear.weight", granite + "output_linear.weight")
                : (p + "gate_up_proj", p + "down_proj")
            if r.has(gateUp) {
                let gu = try r.stacked(gateUp, count: E, rows: 2 * Fe, cols: D)
                let d = try r.stacked(down, count: E, rows: D, cols: Fe)
                for e in 0..<E {
                    let b = e * 2 * Fe
                    experts.append(ExpertWeights(gate: gu.rows(b ..< b + Fe), up: gu.rows(b + Fe ..< b + 2 * Fe),
                                                 down: d.rows(e * D ..< (e + 1) * D)))
                }
            } else {
                let (gn, un, dn) = hfMoePrefix == "block_sparse_moe" ? ("w1", "w3", "w2") : ("gate_proj", "up_proj", "down_proj")
                for e in 0..<E {
                    experts.append(ExpertWeights(gate: try r.matrix(p + "\(e).\(gn).weight", rows: Fe, cols: D),
                                                 up: try r.matrix(p + "\(e).\(un).weight", rows: Fe, cols: D),
                                                 down: try r.matrix(p + "\(e).\(dn).weight", rows: D, cols: Fe)))
                }
            }
        }
        if moe.expertBias {
            // gpt-oss: HF gate_up_proj_bias [E, 2F] (gate | up per expert, as ClassicTensors regroups it) and
            // down_proj_bias [E, D]; GGUF ffn_{gate,up,down}_exps.bias
            func rows(_ name: String, _ count: Int, _ width: Int) throws -> [[Float]] {
                let m = try r.matrix(name, rows: count, cols: width)
                return (0..<count).map { m.rowArray($0) }
            }
            let (gb, ub, db): ([[Float]], [[Float]], [[Float]])
            if n == .gguf {
                (gb, ub, db) = (try rows("blk.\(l).ffn_gate_exps.bias", E, Fe), try rows("blk.\(l).ffn_up_exps.bias", E, Fe),
                                try rows("blk.\(l).ffn_down_exps.bias", E, D))
            } else {
                let p = "model.layers.\(l).mlp.experts."
                let gu = try rows(p + "gate_up_proj_bias", E, 2 * Fe)
                (gb, ub, db) = (gu.map { Array($0[0..<Fe]) }, gu.map { Array($0[Fe...]) }, try rows(p + "down_proj_bias", E, D))
            }
            for e in 0..<E { (experts[e].gateBias, experts[e].upBias, experts[e].downBias) = (gb[e], ub[e], db[e]) }
        }
        if moe.routerBias {
            lw.routerBias = try r.vector(n == .gguf ? "blk.\(l).ffn_gate_inp.bias" : "model.layers.\(l).mlp.gate.bias", count: E)
        }
        lw.experts = experts
        (lw.gate, lw.up, lw.down) = (experts[0].gate, experts[0].up, experts[0].down)
        if let Fs = moe.sharedIntermediateSize {   // Qwen2-MoE: HF mlp.shared_expert.*, GGUF ffn_*_shexp
            let hf = "model.layers.\(l).mlp.shared_expert", g = "blk.\(l).ffn_"
            func m(_ hfName: String, _ gguf: String, _ rows: Int, _ cols: Int) throws -> WeightMatrix {
                try r.matrix(n == .gguf ? g + gguf + "_shexp.weight" : "\(hf).\(hfName).weight", rows: rows, cols: cols)
            }
            lw.shared = ExpertWeights(gate: try m("gate_proj", "gate", Fs, D), up: try m("up_proj", "up", Fs, D),
                                      down: try m("down_proj", "down", D, Fs))
            // [1, hidden] (HF; llama.cpp's converter too), or [hidden] (which ggml takes as the same)
            let name = n == .gguf ? "blk.\(l).ffn_gate_inp_shexp.weight" : "\(hf)_gate.weight"
            lw.sharedGate = r.store.tensor(name)?.shape == [D] ? try r.vector(name, count: D)
                : try r.matrix(name, rows: 1, cols: D).rowArray(0)
        }
        return lw
    }
    var layers: [LayerWeights] = []
    layers.reserveCapacity(c.numLayers)
    for l in 0..<c.numLayers {
        func m(_ p: String, _ rows: Int, _ cols: Int) throws -> WeightMatrix { try r.matrix(n.name(p, layer: l), rows: rows, cols: cols) }
        func v(_ p: String, _ count: Int) throws -> [Float] {
            // OLMo-1's LayerNorms have no weights: ones, multiplied through as any norm's
            if !c.normWeights, ["attn_norm", "ffn_norm_llama"].contains(p) { return [Float](repeating: 1, count: count) }
            if let name = ownNorms?[p] { return try r.vector(layerPrefix(l) + name, count: count) }
            return try r.vector(n.name(p, layer: l), count: count)
        }
        let (wq, wk, wv): (WeightMatrix, WeightMatrix, WeightMatrix)
        var (bq, bk, bv): ([Float]?, [Float]?, [Float]?) = (nil, nil, nil)
        if c.fusedProjections {
            // row ranges of the one stored matrix (Phi-3, GPT-2, GPT-NeoX): q | k | v, and so its bias
            let qkv = try m("qkv", c.qDim + 2 * c.kvDim, D)
            (wq, wk, wv) = (qkv.rows(0..<c.qDim), qkv.rows(c.qDim..<(c.qDim + c.kvDim)), qkv.rows((c.qDim + c.kvDim)..<qkv.rows))
            if c.attentionBias {
                let b = try v("qkv_bias", c.qDim + 2 * c.kvDim)
                (bq, bk, bv) = (Array(b[0..<c.qDim]), Array(b[c.qDim..<(c.qDim + c.kvDim)]), Array(b[(c.qDim + c.kvDim)...]))
            }
        } else {
            (wq, wk, wv) = (try m("q", c.qDim, D), try m("k", c.kvDim, D), try m("v", c.kvDim, D))
            if c.attentionBias { (bq, bk, bv) = (try v("q_bias", c.qDim), try v("k_bias", c.kvDim), try v("v_bias", c.kvDim)) }
        }
        let (gate, up): (WeightMatrix, WeightMatrix)
        if let moe = c.moe, moe.layers[l] {
            let router = try r.matrix(n == .gguf ? "blk.\(l).ffn_gate_inp.weight"
                                      : c.architecture == "granitemoe" ? "model.layers.\(l).block_sparse_moe.router.layer.weight"
                                      : "model.layers.\(l).\(hfMoePrefix).gate.weight",
                                      rows: moe.experts, cols: D)
            (gate, up) = (router, router)   // placeholders: the experts are read below
        } else if !c.gatedMLP {
            let u = try m("up", F, D)
            (gate, up) = (u, u)   // no gate: the placeholder is never read
        } else if c.fusedGateUp {
            let gateUp = try m("gate_up", 2 * F, D)
            (gate, up) = (gateUp.rows(0..<F), gateUp.rows(F..<(2 * F)))
        } else {
            (gate, up) = (try m("gate", F, D), try m("up", F, D))
        }
        let ffnNorm = c.norms == .post || c.parallelBlock ? nil : try v(c.norms == .sandwich ? "ffn_norm_gemma2" : "ffn_norm_llama", D)
        var lw = LayerWeights(
            attnNorm: c.norms == .post ? nil : try v("attn_norm", D),
            wq: wq, wk: wk, wv: wv, wo: try m("o", D, c.qDim),
            bq: bq, bk: bk, bv: bv,
            qNorm: c.qkNorm ? try v("q_norm", c.qkNormAcrossHeads ? c.qDim : c.headDim) : nil,
            kNorm: c.qkNorm ? try v("k_norm", c.qkNormAcrossHeads ? c.kvDim : c.headDim) : nil,
            postAttnNorm: c.norms == .pre ? nil : try v("post_attn_norm", D),
            ffnNorm: ffnNorm,
            postFFNorm: c.norms == .pre ? nil : try v("post_ffn_norm", D),
            gate: gate, up: up, down: c.moe?.layers[l] == true ? gate : try m("down", D, F))
        if c.normBias {
            lw.attnNormBias = try v("attn_norm_bias", D)
            if ffnNorm != nil { lw.ffnNormBias = try v("ffn_norm_bias", D) }
        }
        if c.attnOutputBias { lw.bo = try v("o_bias", D) }
        if c.attentionSinks {
            lw.sinks = try r.vector(n == .gguf ? "blk.\(l).attn_sinks.weight" : "model.layers.\(l).self_attn.sinks", count: c.numHeads)
        }
        if c.mlpBias { (lw.bUp, lw.bDown) = (try v("up_bias", F), try v("down_bias", D)) }
        layers.append(c.moe?.layers[l] == true ? try withExperts(lw, layer: l) : lw)
    }
    let embed = try r.matrix(n.name("embed"), rows: c.vocabSize, cols: D)
    let finalNorm = c.normWeights ? try r.vector(n.name("final_norm"), count: D) : [Float](repeating: 1, count: D)
    let finalNormBias = c.normBias ? try r.vector(n.name("final_norm_bias"), count: D) : nil
    let positions = c.learnedPositions ? try r.matrix(n.name("positions"), rows: c.maxPositions, cols: D) : nil
    let lmHead: WeightMatrix
    if c.tieWordEmbeddings {
        lmHead = embed
        if r.has(n.name("lm_head")) { _ = try r.matrix(n.name("lm_head"), rows: c.vocabSize, cols: D) } // saved copy of the tied weight
    } else {
        lmHead = try r.matrix(n.name("lm_head"), rows: c.vocabSize, cols: D)
    }
    let lmHeadBias = c.headBias ? try r.vector(n.name("lm_head_bias"), count: c.vocabSize) : nil
    var factors: [Float]? = nil
    if n == .gguf, r.has("rope_freqs.weight") { factors = try r.vector("rope_freqs.weight", count: c.ropeDim / 2) }
    if n == .gguf, c.longRope != nil {   // read into the config already (Phi3Architecture)
        for name in ["rope_factors_long.weight", "rope_factors_short.weight"] { _ = try r.vector(name, count: c.ropeDim / 2) }
    }
    let extra = r.unexpected { name in
        name.hasSuffix("rotary_emb.inv_freq") || name.hasSuffix(".attn_rot_embd")
    }
    if let first = extra.first {
        throw ModelError("\(r.source): unexpected tensor '\(first)'\(extra.count > 1 ? " (and \(extra.count - 1) more)" : "") for architecture \(c.architecture)")
    }
    return ModelWeights(embed: embed, layers: layers, finalNorm: finalNorm, finalNormBias: finalNormBias, positions: positions,
                        lmHead: lmHead, lmHeadBias: lmHeadBias, ropeFreqFactors: factors)
}
