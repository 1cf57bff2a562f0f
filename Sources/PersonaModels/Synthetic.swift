import CPersonaKernels
import Foundation
import PersonaFormats
import PersonaTensor

/// Random weights of a real model's shape, for benchmarks: speed does not depend on the values.
extension TransformerModel {
    /// A model of `config`'s shapes whose matrices are stored as `dtype` (f32, f16, bf16 or q8_0), filled with
    /// deterministic random values (uniform, std 0.02; norms 1; small biases) from `seed`. Generation is spread
    /// over `pool`.
    public static func synthetic(config c: ModelConfig, dtype: DType, seed: UInt64, pool: ThreadPool = .shared) throws -> TransformerModel {
        guard [.f32, .f16, .bf16, .q8_0].contains(dtype) else {
            throw ModelError("synthetic weights: dtype \(dtype.rawValue) is not supported (use f32, f16, bf16 or q8_0)")
        }
        try c.validate(source: "synthetic \(c.architecture)")
        var next: UInt64 = 0
        func matrix(_ rows: Int, _ cols: Int) throws -> WeightMatrix {
            next += 1
            return try randomMatrix(rows: rows, cols: cols, dtype: dtype, seed: seed &+ next &* 0x9E3779B97F4A7C15, pool: pool)
        }
        func vector(_ n: Int, around center: Float, spread: Float) -> [Float] {
            next += 1
            var rng = SplitMix(seed &+ next &* 0x9E3779B97F4A7C15)
            return (0..<n).map { _ in center + spread * (rng.uniform() * 2 - 1) }
        }
        let D = c.hiddenSize, F = c.intermediateSize
        let one = 1 - c.normOffset   // stored norm weight whose effective scale is 1
        var layers: [LayerWeights] = []
        for _ in 0..<c.numLayers {
            layers.append(LayerWeights(
                attnNorm: vector(D, around: one, spread: 0),
                wq: try matrix(c.qDim, D), wk: try matrix(c.kvDim, D), wv: try matrix(c.kvDim, D), wo: try matrix(D, c.qDim),
                bq: c.attentionBias ? vector(c.qDim, around: 0, spread: 0.02) : nil,
                bk: c.attentionBias ? vector(c.kvDim, around: 0, spread: 0.02) : nil,
                bv: c.attentionBias ? vector(c.kvDim, around: 0, spread: 0.02) : nil,
                qNorm: c.qkNorm ? vector(c.headDim, around: one, spread: 0) : nil,
                kNorm: c.qkNorm ? vector(c.headDim, around: one, spread: 0) : nil,
                postAttnNorm: c.sandwichNorms ? vector(D, around: one, spread: 0) : nil,
                ffnNorm: vector(D, around: one, spread: 0),
                postFFNorm: c.sandwichNorms ? vector(D, around: one, spread: 0) : nil,
                gate: try matrix(F, D), up: try matrix(F, D), down: try matrix(D, F)))
        }
        let embed = try matrix(c.vocabSize, D)
        let lmHead = c.tieWordEmbeddings ? embed : try matrix(c.vocabSize, D)
        let weights = ModelWeights(embed: embed, layers: layers, finalNorm: vector(D, around: one, spread: 0),
                                   lmHead: lmHead, ropeFreqFactors: nil)
        return TransformerModel(config: c, weights: weights)
    }

    static func randomMatrix(rows: Int, cols: Int, dtype: DType, seed: UInt64, pool: ThreadPool) throws -> WeightMatrix {
        guard let rb = dtype.rowBytes(cols) else {
            throw ModelError("synthetic weights: \(cols) columns is not a multiple of \(dtype.rawValue)'s block size \(dtype.blockSize)")
        }
        let storage = OwnedBytes(count: rb * rows)
        let amplitude: Float = 0.02 * Float(3).squareRoot()   // uniform(-a, a) has std 0.02
        let chunk = 256
        pool.parallelFor((rows + chunk - 1) / chunk) { ci in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
            defer { row.deallocate() }
            for r in (ci * chunk)..<min(rows, (ci + 1) * chunk) {
                var rng = SplitMix(seed ^ UInt64(r) &* 0xD1B54A32D192ED03)
                for i in 0..<cols { row[i] = amplitude * (rng.uniform() * 2 - 1) }
                let dst = storage.pointer + r * rb
                switch dtype {
                case .f32: dst.copyMemory(from: row, byteCount: rb)
                case .f16: let d = dst.assumingMemoryBound(to: UInt16.self); for i in 0..<cols { d[i] = Float16(row[i]).bitPattern }
                case .bf16: let d = dst.assumingMemoryBound(to: UInt16.self); for i in 0..<cols { d[i] = pk_f32_to_bf16(row[i]) }
                default: pk_quantize_row_q8_0(row, Int64(cols), dst)
                }
            }
        }
        return WeightMatrix(data: UnsafeRawPointer(storage.pointer), dtype: dtype, rows: rows, cols: cols, owner: storage)
    }

    /// Bytes of weights one decode step reads: every block matrix and the output head (embedding rows are
    /// gathered, not streamed).
    public var weightBytesPerToken: Int {
        weights.layers.reduce(0) { s, l in
            s + l.wq.byteCount + l.wk.byteCount + l.wv.byteCount + l.wo.byteCount + l.gate.byteCount + l.up.byteCount + l.down.byteCount
        } + weights.lmHead.byteCount
    }

    /// Bytes of all weight matrices held (a tied output head counted once).
    public var weightBytesTotal: Int {
        weightBytesPerToken - weights.lmHead.byteCount + weights.embed.byteCount
            + (config.tieWordEmbeddings ? 0 : weights.lmHead.byteCount)
    }

    /// Storage type of the block matrices.
    public var weightType: DType { weights.layers.first?.wq.dtype ?? weights.embed.dtype }

    /// Writes the weights as a GGUF file llama.cpp can load (llama / qwen2 architectures; no tokenizer:
    /// `tokenizer.ggml.model = "none"`, so feed token ids). Matrices keep their stored bytes; norms and biases are F32.
    public func writeBenchmarkGGUF(to url: URL) throws { try writeGGUF(to: url) }

    /// Writes the weights, in their stored types, as a GGUF with llama.cpp's tensor names and metadata
    /// (llama, mistral -> `llama`, qwen2). Q/K rows are permuted for the `llama` architecture when the
    /// model uses HF's rotate_half RoPE, as llama.cpp's converter does, so llama.cpp computes the same thing.
    public func writeGGUF(to url: URL) throws {
        let c = config
        guard ["llama", "qwen2", "mistral"].contains(c.architecture) else {
            throw ModelError("GGUF export: architecture \(c.architecture) is not supported (llama, mistral, qwen2)")
        }
        let arch = c.architecture == "qwen2" ? "qwen2" : "llama"
        var g = GGUFWriter()
        g.set("general.architecture", .string(arch))
        g.set("general.name", .string("persona-bench-synthetic"))
        g.set("\(arch).context_length", .uint32(UInt32(c.maxPositions)))
        g.set("\(arch).embedding_length", .uint32(UInt32(c.hiddenSize)))
        g.set("\(arch).feed_forward_length", .uint32(UInt32(c.intermediateSize)))
        g.set("\(arch).block_count", .uint32(UInt32(c.numLayers)))
        g.set("\(arch).attention.head_count", .uint32(UInt32(c.numHeads)))
        g.set("\(arch).attention.head_count_kv", .uint32(UInt32(c.numKVHeads)))
        g.set("\(arch).attention.key_length", .uint32(UInt32(c.headDim)))
        g.set("\(arch).attention.value_length", .uint32(UInt32(c.headDim)))
        g.set("\(arch).rope.dimension_count", .uint32(UInt32(c.headDim)))
        g.set("\(arch).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps))
        g.set("\(arch).rope.freq_base", .float32(Float(c.ropeTheta)))
        g.set("\(arch).vocab_size", .uint32(UInt32(c.vocabSize)))
        g.set("tokenizer.ggml.model", .string("none"))

        func raw(_ m: WeightMatrix) -> Data {
            Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: m.data), count: m.byteCount, deallocator: .none)
        }
        let permute = arch == "llama" && c.ropeStyle == .halfRotation
        // rotate_half pairs (i, i + d/2) -> interleaved pairs (2i, 2i + 1): within each head, row j*half + i moves to 2i + j.
        func qk(_ m: WeightMatrix, heads: Int) -> Data {
            guard permute else { return raw(m) }
            let rb = m.rowBytes, hd = c.headDim, half = hd / 2
            var out = Data(count: m.byteCount)
            out.withUnsafeMutableBytes { dst in
                for h in 0..<heads { for i in 0..<half { for j in 0..<2 {
                    let from = h * hd + j * half + i, to = h * hd + 2 * i + j
                    dst.baseAddress!.advanced(by: to * rb).copyMemory(from: m.data + from * rb, byteCount: rb)
                } } }
            }
            return out
        }
        func f32(_ v: [Float]) -> Data { v.withUnsafeBufferPointer { Data(buffer: $0) } }
        try g.addTensor(name: "token_embd.weight", dtype: weights.embed.dtype, shape: [c.vocabSize, c.hiddenSize], data: raw(weights.embed))
        try g.addTensor(name: "output_norm.weight", dtype: .f32, shape: [c.hiddenSize], data: f32(weights.finalNorm))
        if !c.tieWordEmbeddings {
            try g.addTensor(name: "output.weight", dtype: weights.lmHead.dtype, shape: [c.vocabSize, c.hiddenSize], data: raw(weights.lmHead))
        }
        for (l, w) in weights.layers.enumerated() {
            let p = "blk.\(l)."
            try g.addTensor(name: p + "attn_norm.weight", dtype: .f32, shape: [c.hiddenSize], data: f32(w.attnNorm))
            try g.addTensor(name: p + "attn_q.weight", dtype: w.wq.dtype, shape: [w.wq.rows, w.wq.cols], data: qk(w.wq, heads: c.numHeads))
            try g.addTensor(name: p + "attn_k.weight", dtype: w.wk.dtype, shape: [w.wk.rows, w.wk.cols], data: qk(w.wk, heads: c.numKVHeads))
            for (n, m) in [("attn_v", w.wv), ("attn_output", w.wo), ("ffn_gate", w.gate), ("ffn_up", w.up), ("ffn_down", w.down)] {
                try g.addTensor(name: p + n + ".weight", dtype: m.dtype, shape: [m.rows, m.cols], data: raw(m))
            }
            for (n, b) in [("attn_q", w.bq), ("attn_k", w.bk), ("attn_v", w.bv)] {
                if let b { try g.addTensor(name: p + n + ".bias", dtype: .f32, shape: [b.count], data: f32(b)) }
            }
            try g.addTensor(name: p + "ffn_norm.weight", dtype: .f32, shape: [c.hiddenSize], data: f32(w.ffnNorm))
        }
        try g.write(to: url)
    }
}

/// SplitMix64: a small, fast, seedable generator for synthetic weights.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    @inline(__always) mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    @inline(__always) mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }
}
