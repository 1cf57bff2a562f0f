import Foundation
import PersonaFormats
import PersonaTensor

/// A tensor store whose names are not the file's: messages name a tensor as the file has it.
protocol RenamedTensors: TensorStore {
    func storedName(_ name: String) -> String
}

/// GPT-2's and GPT-NeoX's (Pythia's) Hugging Face checkpoints under the names the shared loader reads (Llama's, plus
/// `self_attn.qkv_proj`, biases, `model.embed_positions`), in its layouts: matrices [out, in] with q | k | v as row
/// blocks. GPT-2 stores its Conv1D weights [in, out], so those are transposed; GPT-NeoX interleaves q, k, v per head
/// (rows [heads, 3, head_dim]), so its rows are regrouped; both in their stored type (as llama.cpp's converter does
/// both). Those are copies made once at load; everything else stays mapped. Stored tensors nothing maps (other
/// than the attention-mask and RoPE buffers older checkpoints keep) keep their names, so strict loading names them.
final class ClassicTensors: RenamedTensors {
    enum Transform { case none, transpose, perHeadQKV(heads: Int), stackedTranspose, interleavedGateUp, interleavedGateUpBias }
    let base: TensorStore
    let tensorNames: [String]
    private let sources: [String: (stored: String, transform: Transform)]
    private let mapped: Set<String>   // the stored names `sources` reads
    private var made: [String: TensorInfo] = [:]
    private let lock = NSLock()

    /// GPT-2 (`transformer.` prefixed as transformers saves it, or bare as the Hub's openai-community/gpt2 files).
    static func gpt2(_ store: TensorStore, layers: Int) -> ClassicTensors {
        let p = store.tensor("transformer.wte.weight") != nil ? "transformer." : ""
        var s: [String: (String, Transform)] = [
            "model.embed_tokens.weight": (p + "wte.weight", .none), "model.embed_positions.weight": (p + "wpe.weight", .none),
            "model.norm.weight": (p + "ln_f.weight", .none), "model.norm.bias": (p + "ln_f.bias", .none),
            "lm_head.weight": ("lm_head.weight", .none),
        ]
        for l in 0..<layers {
            let ours = "model.layers.\(l).", theirs = p + "h.\(l)."
            for (o, t) in [("input_layernorm", "ln_1"), ("post_attention_layernorm", "ln_2"), ("self_attn.qkv_proj", "attn.c_attn"),
                           ("self_attn.o_proj", "attn.c_proj"), ("mlp.up_proj", "mlp.c_fc"), ("mlp.down_proj", "mlp.c_proj")] {
                let conv1D = !o.hasSuffix("layernorm")
                s[ours + o + ".weight"] = (theirs + t + ".weight", conv1D ? .transpose : .none)
                s[ours + o + ".bias"] = (theirs + t + ".bias", .none)
            }
        }
        return ClassicTensors(base: store, sources: s) { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") }
    }

    /// GPT-NeoX / Pythia (`gpt_neox.*`, `embed_out.weight`).
    static func gptNeoX(_ store: TensorStore, layers: Int, heads: Int) -> ClassicTensors {
        var s: [String: (String, Transform)] = [
            // the Hub's head name (transformers 5 calls it lm_head and saves it so)
            "model.embed_tokens.weight": ("gpt_neox.embed_in.weight", .none),
            "lm_head.weight": (store.tensor("embed_out.weight") == nil && store.tensor("lm_head.weight") != nil ? "lm_head.weight" : "embed_out.weight", .none),
            "model.norm.weight": ("gpt_neox.final_layer_norm.weight", .none), "model.norm.bias": ("gpt_neox.final_layer_norm.bias", .none),
        ]
        for l in 0..<layers {
            let ours = "model.layers.\(l).", theirs = "gpt_neox.layers.\(l)."
            for (o, t) in [("input_layernorm", "input_layernorm"), ("post_attention_layernorm", "post_attention_layernorm"),
                           ("self_attn.qkv_proj", "attention.query_key_value"), ("self_attn.o_proj", "attention.dense"),
                           ("mlp.up_proj", "mlp.dense_h_to_4h"), ("mlp.down_proj", "mlp.dense_4h_to_h")] {
                let qkv = o == "self_attn.qkv_proj"
                s[ours + o + ".weight"] = (theirs + t + ".weight", qkv ? .perHeadQKV(heads: heads) : .none)
                s[ours + o + ".bias"] = (theirs + t + ".bias", qkv ? .perHeadQKV(heads: heads) : .none)
            }
        }
        return ClassicTensors(base: store, sources: s) {
            $0.hasSuffix(".attention.bias") || $0.hasSuffix(".attention.masked_bias") || $0.hasSuffix(".rotary_emb.inv_freq")
        }
    }

    /// Phi-1 / 1.5 / 2: Llama's names but for `self_attn.dense`, `mlp.fc1` / `fc2` and `model.final_layernorm`; nothing
    /// to transform.
    static func phi(_ store: TensorStore, layers: Int) -> ClassicTensors {
        var s: [String: (String, Transform)] = [
            "model.norm.weight": ("model.final_layernorm.weight", .none), "model.norm.bias": ("model.final_layernorm.bias", .none),
        ]
        for l in 0..<layers {
            let p = "model.layers.\(l)."
            for (o, t) in [("self_attn.o_proj", "self_attn.dense"), ("mlp.up_proj", "mlp.fc1"), ("mlp.down_proj", "mlp.fc2")] {
                for part in [".weight", ".bias"] { s[p + o + part] = (p + t + part, .none) }
            }
        }
        return ClassicTensors(base: store, sources: s) { _ in false }
    }

    /// gpt-oss (its BF16 checkpoints; the Hub's MXFP4 ones are refused by its config reader): the router as the
    /// mixture's `mlp.gate`, and the experts in the loader's stacked layout: gate_up_proj [E, D, 2F] with gate and up in
    /// alternate columns becomes [E, 2F, D] (each expert's gate rows, then its up rows), down_proj [E, F, D] becomes
    /// [E, D, F], and gate_up_proj_bias is regrouped the same way; copies in the stored type, made once at load.
    static func gptOss(_ store: TensorStore, layers: Int) -> ClassicTensors {
        var s: [String: (String, Transform)] = [:]
        for l in 0..<layers {
            let p = "model.layers.\(l).mlp."
            s[p + "gate.weight"] = (p + "router.weight", .none)
            s[p + "gate.bias"] = (p + "router.bias", .none)
            s[p + "experts.gate_up_proj"] = (p + "experts.gate_up_proj", .interleavedGateUp)
            s[p + "experts.down_proj"] = (p + "experts.down_proj", .stackedTranspose)
            s[p + "experts.gate_up_proj_bias"] = (p + "experts.gate_up_proj_bias", .interleavedGateUpBias)
        }
        return ClassicTensors(base: store, sources: s) { _ in false }
    }

    /// StarCoder2: Llama's names but for the MLP's `c_fc` / `c_proj`.
    static func starCoder2(_ store: TensorStore, layers: Int) -> ClassicTensors {
        var s: [String: (String, Transform)] = [:]
        for l in 0..<layers {
            let p = "model.layers.\(l)."
            for (o, t) in [("mlp.up_proj", "mlp.c_fc"), ("mlp.down_proj", "mlp.c_proj")] {
                for part in [".weight", ".bias"] { s[p + o + part] = (p + t + part, .none) }
            }
        }
        return ClassicTensors(base: store, sources: s) { _ in false }
    }

    private init(base: TensorStore, sources: [String: (String, Transform)], buffer: (String) -> Bool) {
        self.base = base
        self.sources = sources.mapValues { (stored: $0.0, transform: $0.1) }
        let mapped = Set(sources.values.map(\.0))
        self.mapped = mapped
        tensorNames = (sources.filter { base.tensor($0.value.0) != nil }.map(\.key)
            + base.tensorNames.filter { !mapped.contains($0) && !buffer($0) }).sorted()
    }

    func storedName(_ name: String) -> String { sources[name]?.stored ?? name }

    func tensor(_ name: String) -> TensorInfo? {
        guard let (stored, transform) = sources[name] else { return mapped.contains(name) ? nil : base.tensor(name) }
        guard let t = base.tensor(stored) else { return nil }
        if case .none = transform { return t }
        lock.lock()
        defer { lock.unlock() }
        if let done = made[name] { return done }
        // a tensor of another shape or type than the layout's is passed on as it is: the reader's checks name it
        guard let copy = Self.apply(transform, to: t, name: name) else { return t }
        made[name] = copy
        return copy
    }

    /// The transformed copy, or nil when `t` does not have the shape the transform expects.
    private static func apply(_ transform: Transform, to t: TensorInfo, name: String) -> TensorInfo? {
        switch transform {
        case .none:
            return t
        case .transpose:
            // [in, out] -> [out, in], element by element in the stored type (the float types only: a Conv1D weight
            // is never quantised)
            guard t.shape.count == 2, [.f32, .f16, .bf16].contains(t.dtype), case let (n, m) = (t.shape[0], t.shape[1]),
                  let size = t.dtype.rowBytes(1), size * n * m == t.byteCount else { return nil }
            let out = OwnedBytes(count: t.byteCount)
            func move<E>(_: E.Type) {
                let src = t.data.assumingMemoryBound(to: E.self), dst = out.pointer.assumingMemoryBound(to: E.self)
                for i in 0..<n { for j in 0..<m { dst[j * n + i] = src[i * m + j] } }
            }
            if size == 4 { move(UInt32.self) } else { move(UInt16.self) }
            return TensorInfo(name: name, dtype: t.dtype, shape: [m, n], data: out.pointer, byteCount: t.byteCount, owner: out)
        case .stackedTranspose, .interleavedGateUp, .interleavedGateUpBias:
            // [E, a, b] -> [E, b, a] (interleaved: output row r < b / 2 takes input column 2r, row b / 2 + r column 2r + 1);
            // a bias [E, 2F]: per expert, the even entries then the odd ones
            let bias: Bool
            if case .interleavedGateUpBias = transform { bias = true } else { bias = false }
            guard t.shape.count == (bias ? 2 : 3), [.f32, .f16, .bf16].contains(t.dtype), let size = t.dtype.rowBytes(1),
                  size * t.shape.reduce(1, *) == t.byteCount else { return nil }
            let (E, a, b) = bias ? (t.shape[0], 1, t.shape[1]) : (t.shape[0], t.shape[1], t.shape[2])
            if case .stackedTranspose = transform {} else if b % 2 != 0 { return nil }
            let interleaved: Bool
            if case .stackedTranspose = transform { interleaved = false } else { interleaved = true }
            let out = OwnedBytes(count: t.byteCount)
            func move<T>(_: T.Type) {
                let src = t.data.assumingMemoryBound(to: T.self), dst = out.pointer.assumingMemoryBound(to: T.self)
                for e in 0..<E {
                    let s = src + e * a * b, d = dst + e * a * b
                    for r in 0..<b {
                        let col = interleaved ? (r < b / 2 ? 2 * r : 2 * (r - b / 2) + 1) : r
                        for i in 0..<a { d[r * a + i] = s[i * b + col] }
                    }
                }
            }
            if size == 4 { move(UInt32.self) } else { move(UInt16.self) }
            return TensorInfo(name: name, dtype: t.dtype, shape: bias ? t.shape : [E, b, a], data: out.pointer,
                              byteCount: t.byteCount, owner: out)
        case .perHeadQKV(let heads):
            // rows (or a bias's entries) [heads, 3, d] -> [3, heads, d]
            let rows = t.shape[0], inner = t.shape.count == 2 ? t.shape[1] : 1
            guard t.shape.count <= 2, heads > 0, rows % (3 * heads) == 0 else { return nil }
            let d = rows / (3 * heads)
            if t.shape.count == 2 {
                guard let rb = t.dtype.rowBytes(inner), rb * rows == t.byteCount else { return nil }
                let out = OwnedBytes(count: t.byteCount)
                for h in 0..<heads { for part in 0..<3 {
                    let from = (h * 3 + part) * d, to = (part * heads + h) * d
                    (out.pointer + to * rb).copyMemory(from: t.data + from * rb, byteCount: d * rb)
                } }
                return TensorInfo(name: name, dtype: t.dtype, shape: t.shape, data: out.pointer, byteCount: t.byteCount, owner: out)
            }
            // a bias: its entries, through f32
            guard t.dtype.rowBytes(rows) == t.byteCount, [.f32, .f16, .bf16].contains(t.dtype) else { return nil }
            let v = WeightMatrix(data: t.data, dtype: t.dtype, rows: 1, cols: rows, owner: t.owner).rowArray(0)
            let out = OwnedBytes(count: rows * 4)
            let dst = out.pointer.assumingMemoryBound(to: Float.self)
            for h in 0..<heads { for part in 0..<3 { for i in 0..<d { dst[(part * heads + h) * d + i] = v[(h * 3 + part) * d + i] } } }
            return TensorInfo(name: name, dtype: .f32, shape: [rows], data: out.pointer, byteCount: rows * 4, owner: out)
        }
    }
}
