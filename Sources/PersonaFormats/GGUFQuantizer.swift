import CPersonaKernels
import Foundation
import PersonaTensor

/// What `GGUFQuantizer` reads: a GGUF file, or a model about to be written as one (a folder's export, which then
/// needs no intermediate file). Tensors in file order; their bytes are asked for one tensor at a time.
public protocol GGUFSource {
    /// Names the source in messages (a file's path, or a folder's).
    var sourcePath: String { get }
    var metadataKeys: [String] { get }
    var metadata: [String: GGUFValue] { get }
    var tensorNamesInFileOrder: [String] { get }
    /// Type and shape (outermost first) of a tensor, without its bytes.
    func tensorHeader(_ name: String) -> (dtype: DType, shape: [Int])?
    /// The tensor's bytes, valid only inside `body` (a source may make them for the call).
    func withTensor<R>(_ name: String, _ body: (TensorInfo) throws -> R) throws -> R
}

extension GGUFFile: GGUFSource {
    public var sourcePath: String { url.path }
    public func tensorHeader(_ name: String) -> (dtype: DType, shape: [Int])? { tensor(name).map { ($0.dtype, $0.shape) } }
    public func withTensor<R>(_ name: String, _ body: (TensorInfo) throws -> R) throws -> R {
        guard let t = tensor(name) else { throw FormatError(file: url.path, "no tensor '\(name)'") }
        return try body(t)
    }
}

/// Rewrites a GGUF file with its weight matrices quantised the way llama.cpp's `llama-quantize` does without an
/// importance matrix: the same per-tensor types (llama_tensor_get_type for the legacy, K-mix, Q6_K and IQ4 file types, or
/// one type for every matrix with `pure`), the same reference quantisers (quantize.c), the same metadata plus
/// `general.quantization_version` and `general.file_type` moved to the end, tensors in llama.cpp's order (by block
/// number, tensors outside blocks first, then by name).
public struct GGUFQuantizer {
    /// A file type `llama-quantize` accepts, by the name it prints (Q4_0, Q8_0, ...).
    public enum FileType: String, CaseIterable, Sendable {
        case q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1", q8_0 = "Q8_0"
        case q2_k = "Q2_K", q3_k_s = "Q3_K_S", q3_k_m = "Q3_K_M", q3_k_l = "Q3_K_L"
        case q4_k_s = "Q4_K_S", q4_k_m = "Q4_K_M", q5_k_s = "Q5_K_S", q5_k_m = "Q5_K_M", q6_k = "Q6_K"
        case iq4_nl = "IQ4_NL", iq4_xs = "IQ4_XS"
        /// Not quantised: every quantisable tensor converted to this type (llama-quantize's F32 / F16 / BF16).
        case f32 = "F32", f16 = "F16", bf16 = "BF16"

        /// The matrices' default type.
        public var dtype: DType {
            switch self {
            case .q4_0: return .q4_0
            case .q4_1: return .q4_1
            case .q5_0: return .q5_0
            case .q5_1: return .q5_1
            case .q8_0: return .q8_0
            case .q2_k: return .q2_k
            case .q3_k_s, .q3_k_m, .q3_k_l: return .q3_k
            case .q4_k_s, .q4_k_m: return .q4_k
            case .q5_k_s, .q5_k_m: return .q5_k
            case .q6_k: return .q6_k
            case .iq4_nl: return .iq4_nl
            case .iq4_xs: return .iq4_xs
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            }
        }

        /// llama_ftype (LLAMA_FTYPE_MOSTLY_*), stored as general.file_type.
        public var llamaFileType: UInt32 {
            switch self {
            case .q4_0: return 2
            case .q4_1: return 3
            case .q8_0: return 7
            case .q5_0: return 8
            case .q5_1: return 9
            case .q2_k: return 10
            case .q3_k_s: return 11
            case .q3_k_m: return 12
            case .q3_k_l: return 13
            case .q4_k_s: return 14
            case .q4_k_m: return 15
            case .q5_k_s: return 16
            case .q5_k_m: return 17
            case .q6_k: return 18
            case .iq4_nl: return 25
            case .iq4_xs: return 30
            case .f32: return 0
            case .f16: return 1
            case .bf16: return 32
            }
        }

        /// Parses "q4_0", "Q4_0", "q6_k" ...
        public init?(name: String) {
            guard let t = FileType.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
            self = t
        }
    }

    public let fileType: FileType
    /// Every quantisable matrix in `fileType.dtype` (llama-quantize --pure): no Q6_K / Q8_0 output head.
    public let pure: Bool

    public init(fileType: FileType, pure: Bool = false) {
        self.fileType = fileType
        self.pure = pure
    }

    /// One tensor's plan: the type it is written in.
    public struct Plan: Equatable, Sendable {
        public let name: String
        public let from: DType
        public let to: DType
    }

    /// The type llama.cpp chooses for each tensor of `file`, in the order it writes them.
    public func plan(_ file: GGUFSource) throws -> [Plan] {
        let names = file.tensorNamesInFileOrder
        let tied = !names.contains("output.weight")
        let layers = names.filter { $0.contains("attn_v.weight") }.count   // llama.cpp's n_attention_wv
        // llama.cpp's n_gqa() (heads per KV head) and its 70B model type (llama, 80 layers, grouped KV heads)
        let arch = file.metadata["general.architecture"]?.string ?? ""
        let heads = file.metadata["\(arch).attention.head_count"]?.int ?? 0
        let kvHeads = file.metadata["\(arch).attention.head_count_kv"]?.int ?? heads
        let gqa = kvHeads > 0 ? heads / kvHeads : 0
        let is70B = arch == "llama" && file.metadata["llama.block_count"]?.int == 80 && heads != kvHeads
        return try names.sorted(by: Self.llamaOrder).map { name in
            let t = file.tensorHeader(name)!
            return Plan(name: name, from: t.dtype, to: try targetType(name: name, shape: t.shape, stored: t.dtype, tiedEmbeddings: tied,
                                                                   layers: layers, gqa: gqa, is70B: is70B, file: file.sourcePath))
        }
    }

    /// llama-model-loader's weight_name_comparer: block number ("blk.N.", -1 outside blocks), then the name's bytes.
    static func llamaOrder(_ a: String, _ b: String) -> Bool {
        func layer(_ s: String) -> Int {
            guard s.hasPrefix("blk.") else { return -1 }
            return Int(s.dropFirst(4).prefix { $0.isNumber }) ?? -1
        }
        let (la, lb) = (layer(a), layer(b))
        if la != lb { return la < lb }
        return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
    }

    /// The type llama-quantize gives tensor `name` (ggml shape `shape`, outermost first; `layers` blocks, `gqa`
    /// query heads per KV head): llama.cpp's tensor_allows_quantization (the parts that apply to the architectures
    /// read here), then llama_tensor_get_type (the output head, the K and IQ4 mixes; dense models), then the fallback
    /// for rows that are not whole blocks.
    public func targetType(name: String, shape: [Int], stored: DType, tiedEmbeddings: Bool, layers: Int = 0, gqa: Int = 1,
                           is70B: Bool = false, file: String) throws -> DType {
        let quantisable = shape.count >= 2 && name.hasSuffix("weight") && !name.contains("_norm.weight")
            && !name.contains("ffn_gate_inp.weight") && name != "position_embd.weight" && name != "token_types.weight"
        guard quantisable else { return stored }
        let cols = shape.last!   // ggml ne[0]: the row length
        let f = fileType
        var type = f.dtype
        // F32 / F16 / BF16: every quantisable tensor in that type, no mixes, no output-head rule (llama.cpp applies
        // llama_tensor_get_type to quantised types only), and any row length fits
        if [.f32, .f16, .bf16].contains(type) { return type }
        if !pure && (name == "output.weight" || (tiedEmbeddings && name == "token_embd.weight")) {
            // the output head gets more bits: Q6_K, or Q8_0 when its rows are not whole blocks
            if cols % type.blockSize != 0 { type = .q8_0 } else if type != .q8_0 { type = .q6_k }
        } else if !pure {
            // the mixes: more bits for some attn_v / ffn_down / attn_output (llama.cpp's use_more_bits: the first and
            // last eighth of the layers and every third in between)
            let layer = name.hasPrefix("blk.") ? Int(name.dropFirst(4).prefix { $0.isNumber }) ?? 0 : 0
            let n = layers
            let moreBits = layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2
            if name.contains("attn_v.weight") {
                if f == .q2_k { type = gqa >= 4 ? .q4_k : .q3_k }
                else if f == .q3_k_m { type = layer < 2 ? .q5_k : .q4_k }
                else if f == .q3_k_l { type = .q5_k }
                else if (f == .iq4_nl || f == .iq4_xs) && gqa >= 4 { type = .q5_k }
                else if (f == .q4_k_m || f == .q5_k_m) && moreBits { type = .q6_k }
                else if f == .q4_k_s && layer < 4 { type = .q5_k }
                if is70B && (type == .q3_k || type == .q4_k) { type = .q5_k }
            } else if name.contains("ffn_down") {
                if f == .q2_k { type = .q3_k }
                else if f == .q3_k_m { type = layer < n / 16 ? .q5_k : .q4_k }
                else if f == .q3_k_l { type = .q5_k }
                else if f == .q4_k_m { if moreBits { type = .q6_k } }
                else if layer < n / 8 && (f == .iq4_nl || f == .iq4_xs) { type = .q5_k }   // (no importance matrix)
                else if f == .q5_k_m && moreBits { type = .q6_k }
                else if f == .q4_k_s && layer < n / 8 { type = .q5_k }
            } else if name.contains("attn_output.weight") {
                if f == .q2_k { type = .q3_k } else if f == .q3_k_m { type = .q4_k } else if f == .q3_k_l { type = .q5_k }
            } else if name.contains("attn_qkv.weight") {
                if f == .q3_k_m || f == .q3_k_l { type = .q4_k }
                else if f == .q4_k_m { type = .q5_k } else if f == .q5_k_m { type = .q6_k }
            }
        }
        if cols % type.blockSize != 0 {
            switch type {
            case .q2_k, .q3_k: type = .q4_0   // (IQ4_NL in older llama.cpp, e.g. February 2025; Q4_0 in 0.3.36's)
            case .iq4_xs: type = .iq4_nl
            case .q4_k: type = .q5_0
            case .q5_k: type = .q5_1
            case .q6_k: type = .q8_0
            default:
                throw FormatError(file: file, "tensor '\(name)': rows of \(cols) values are not whole \(type.rawValue) blocks of \(type.blockSize) (llama.cpp has no fallback for this type either)")
            }
            if cols % type.blockSize != 0 { type = .f16 }
        }
        return type
    }

    /// Quantises `input` into `output` (written atomically), one tensor at a time: each is converted when the
    /// writer reaches it and released once written, so memory holds one output tensor, not the whole model.
    /// `progress(done, total)` is called after each tensor with bytes of input processed. Returns the plan it followed.
    @discardableResult
    public func quantize(_ input: GGUFSource, to output: URL, pool: ThreadPool = .shared,
                         progress: (Int, Int) -> Void = { _, _ in }) throws -> [Plan] {
        let plans = try plan(input)
        func bytes(_ p: Plan) -> Int { (try? expectedByteCount(dtype: p.from, shape: input.tensorHeader(p.name)!.shape).get()) ?? 0 }
        let total = plans.reduce(0) { $0 + bytes($1) }
        try withoutActuallyEscaping(progress) { progress in
            // the writer, and with it the makers that call progress, ends inside this block
            var g = GGUFWriter()
            let moved: Set<String> = ["general.alignment", "general.quantization_version", "general.file_type"]
            for k in input.metadataKeys where !moved.contains(k) && !k.hasPrefix("split.") {
                g.set(k, input.metadata[k]!)
            }
            g.set("general.quantization_version", .uint32(2))
            g.set("general.file_type", .uint32(fileType.llamaFileType))
            var done = 0
            for p in plans {
                try g.addTensor(name: p.name, dtype: p.to, shape: input.tensorHeader(p.name)!.shape) {
                    let data = try input.withTensor(p.name) { t in
                        p.to == p.from ? t.sharedData : try self.convert(t, to: p.to, pool: pool, file: input.sourcePath)
                    }
                    done += bytes(p)
                    progress(done, total)
                    return data
                }
            }
            try g.write(to: output)
        }
        return plans
    }

    /// Rows dequantised to f32 (as gguf-py does) and quantised to `to`, spread over the pool.
    func convert(_ t: TensorInfo, to: DType, pool: ThreadPool, file: String) throws -> Data {
        let cols = t.shape.last!
        let rows = t.shape.dropLast().reduce(1, *)
        guard let inRow = t.dtype.rowBytes(cols), let outRow = to.rowBytes(cols) else {
            throw FormatError(file: file, "tensor '\(t.name)': \(cols) values per row do not fit \(t.dtype.rawValue) -> \(to.rawValue)")
        }
        guard to == .f32 || to == .f16 || to == .bf16 || pk_quantize_supported(to.kernelCode) != 0 else {
            throw FormatError(file: file, "tensor '\(t.name)': quantising to \(to.rawValue) is not supported (supported: \(FileType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var out = Data(count: rows * outRow)
        out.withUnsafeMutableBytes { dst in
            let base = dst.baseAddress!
            let src = t.data
            let chunk = 64
            pool.parallelFor((rows + chunk - 1) / chunk) { ci in
                let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
                defer { row.deallocate() }
                for r in (ci * chunk)..<min(rows, (ci + 1) * chunk) {
                    pk_dequant_row_scalar(t.dtype.kernelCode, src + r * inRow, Int64(cols), row)
                    let o = base + r * outRow
                    switch to {
                    case .f32: o.copyMemory(from: row, byteCount: outRow)
                    case .f16:
                        let h = o.assumingMemoryBound(to: UInt16.self)
                        for i in 0..<cols { h[i] = pk_f32_to_f16(row[i]) }
                    case .bf16:
                        let h = o.assumingMemoryBound(to: UInt16.self)
                        for i in 0..<cols { h[i] = pk_f32_to_bf16(row[i]) }
                    default: _ = pk_quantize_row(to.kernelCode, row, Int64(cols), o)
                    }
                }
            }
        }
        return out
    }
}
