/// Storage type of a weight tensor. Weights stay in their stored type in memory;
/// kernels convert per row / per tile while computing.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q6_k

    /// Elements per quantisation block (1 for plain floats).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q8_0, .q4_0, .q4_1: return 32
        case .q4_k, .q6_k: return 256
        }
    }

    /// Bytes per block (per element for plain floats).
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34   // f16 scale + 32 x int8
        case .q4_0: return 18   // f16 scale + 16 bytes of nibbles
        case .q4_1: return 20   // f16 scale + f16 minimum + 16 bytes of nibbles
        case .q4_k: return 144  // 2 x f16 + 12 scale bytes + 128 nibble bytes
        case .q6_k: return 210  // 128 low + 64 high + 16 scales + f16
        }
    }

    /// Bytes of one row of `cols` elements, or nil when `cols` is not a multiple of the block size.
    public func rowBytes(_ cols: Int) -> Int? {
        guard cols >= 0, cols % blockSize == 0 else { return nil }
        let (b, o) = (cols / blockSize).multipliedReportingOverflow(by: blockBytes)
        return o ? nil : b
    }

    /// Code passed to the C kernels (`PK_*` in kernels.h).
    public var kernelCode: Int32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .bf16: return 2
        case .q8_0: return 3
        case .q4_0: return 4
        case .q4_k: return 5
        case .q6_k: return 6
        case .q4_1: return 7
        }
    }

    /// GGML type id as stored in GGUF files.
    public var ggmlType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 8
        case .q4_k: return 12
        case .q6_k: return 14
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
