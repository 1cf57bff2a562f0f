import CPersonaKernels

/// Storage type of a weight tensor. Weights stay in their stored type in memory;
/// kernels convert per row / per tile while computing.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs
    /// The importance-matrix lattice types (llama.cpp's IQ1_S / IQ1_M / IQ2_* / IQ3_* files): read and run in exact
    /// precision (rows widened to f32 as gguf-py does) and native precision (q8_K activations, ggml's integer dot
    /// products); no quantiser.
    case iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m
    /// gpt-oss's experts (OCP microscaling FP4: blocks of 32 E2M1 values with one E8M0 scale): read and run in exact
    /// precision (rows widened to f32 as gguf-py does; native precision computes as exact); no quantiser.
    case mxfp4

    /// Code passed to the C kernels (`PK_*` in kernels.h), which also own the block geometry.
    public var kernelCode: Int32 {
        switch self {
        case .f32: return Int32(PK_F32)
        case .f16: return Int32(PK_F16)
        case .bf16: return Int32(PK_BF16)
        case .q8_0: return Int32(PK_Q8_0)
        case .q4_0: return Int32(PK_Q4_0)
        case .q4_1: return Int32(PK_Q4_1)
        case .q5_0: return Int32(PK_Q5_0)
        case .q5_1: return Int32(PK_Q5_1)
        case .q2_k: return Int32(PK_Q2_K)
        case .q3_k: return Int32(PK_Q3_K)
        case .q4_k: return Int32(PK_Q4_K)
        case .q5_k: return Int32(PK_Q5_K)
        case .q6_k: return Int32(PK_Q6_K)
        case .iq4_nl: return Int32(PK_IQ4_NL)
        case .iq4_xs: return Int32(PK_IQ4_XS)
        case .iq2_xxs: return Int32(PK_IQ2_XXS)
        case .iq2_xs: return Int32(PK_IQ2_XS)
        case .iq2_s: return Int32(PK_IQ2_S)
        case .iq3_xxs: return Int32(PK_IQ3_XXS)
        case .iq3_s: return Int32(PK_IQ3_S)
        case .iq1_s: return Int32(PK_IQ1_S)
        case .iq1_m: return Int32(PK_IQ1_M)
        case .mxfp4: return Int32(PK_MXFP4)
        }
    }

    /// The importance-matrix lattice types (IQ1 / IQ2 / IQ3), which `persona convert` cannot write.
    public var isLattice: Bool { [.iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m].contains(self) }

    /// Elements per quantisation block (1 for plain floats).
    public var blockSize: Int { Int(pk_block_elements(kernelCode)) }

    /// Bytes per block (per element for plain floats).
    public var blockBytes: Int { Int(pk_block_bytes(kernelCode)) }

    /// Bytes of one row of `cols` elements, or nil when `cols` is not a multiple of the block size.
    public func rowBytes(_ cols: Int) -> Int? {
        guard cols >= 0, cols % blockSize == 0 else { return nil }
        let (b, o) = (cols / blockSize).multipliedReportingOverflow(by: blockBytes)
        return o ? nil : b
    }

    /// GGML type id as stored in GGUF files.
    public var ggmlType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q5_0: return 6
        case .q5_1: return 7
        case .q8_0: return 8
        case .q2_k: return 10
        case .q3_k: return 11
        case .q4_k: return 12
        case .q5_k: return 13
        case .q6_k: return 14
        case .iq2_xxs: return 16
        case .iq2_xs: return 17
        case .iq3_xxs: return 18
        case .iq1_s: return 19
        case .iq4_nl: return 20
        case .iq3_s: return 21
        case .iq2_s: return 22
        case .iq1_m: return 29
        case .mxfp4: return 39
        case .iq4_xs: return 23
        case .bf16: return 30
        }
    }

    public init?(ggmlType: UInt32) {
        guard let t = DType.allCases.first(where: { $0.ggmlType == ggmlType }) else { return nil }
        self = t
    }

    /// safetensors dtype string ("F32", "F16", "BF16"); nil for quantised types.
    public var safetensorsName: String? {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        default: return nil
        }
    }

    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        default: return nil
        }
    }
}

extension DType {
    /// `count` values stored in this type at `raw` (little-endian, any alignment; a quantised type needs a whole
    /// number of blocks), widened to f32 by the C kernels: one conversion for every reader. Nil when `raw` does not
    /// hold exactly that many values.
    public func floats(_ raw: UnsafeRawBufferPointer, count: Int) -> [Float]? {
        guard let need = rowBytes(count), raw.count == need else { return nil }
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { out, n in
            pk_dequant_row(kernelCode, raw.baseAddress!, Int64(count), out.baseAddress!)
            n = count
        }
    }
}
