/// A named place on the residual stream, printed with TransformerLens names.
///
/// Shapes (per forward of T positions): every point is `[T, hidden]`.
/// `residPost(l) == residPre(l + 1)`; the Hugging Face hidden-state row `l` is
/// `embed` for l = 0, `residPost(l - 1)` for 0 < l < L, and `lnFinal` for l = L.
public enum HookPoint: Hashable, Sendable, CustomStringConvertible, Codable {
    case embed                 // hook_embed: token embeddings after any scaling (Gemma: * sqrt(hidden)); GPT-2: + positions
    case residPre(Int)         // blocks.{l}.hook_resid_pre: input of block l
    case attnOut(Int)          // blocks.{l}.hook_attn_out: attention output added to the stream
    case residMid(Int)         // blocks.{l}.hook_resid_mid: after the attention residual add
    case mlpOut(Int)           // blocks.{l}.hook_mlp_out: MLP output added to the stream
    case residPost(Int)        // blocks.{l}.hook_resid_post: output of block l
    case lnFinal               // ln_final.hook_normalized: final norm output (HF's last hidden state)

    public var name: String {
        switch self {
        case .embed: return "hook_embed"
        case .residPre(let l): return "blocks.\(l).hook_resid_pre"
        case .attnOut(let l): return "blocks.\(l).hook_attn_out"
        case .residMid(let l): return "blocks.\(l).hook_resid_mid"
        case .mlpOut(let l): return "blocks.\(l).hook_mlp_out"
        case .residPost(let l): return "blocks.\(l).hook_resid_post"
        case .lnFinal: return "ln_final.hook_normalized"
        }
    }

    public var description: String { name }

    /// Parses a TransformerLens name ("blocks.3.hook_resid_post", "hook_embed", "ln_final.hook_normalized").
    public init?(name: String) {
        switch name {
        case "hook_embed": self = .embed; return
        case "ln_final.hook_normalized": self = .lnFinal; return
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count == 3, parts[0] == "blocks", let l = Int(parts[1]), l >= 0 else { return nil }
        switch parts[2] {
        case "hook_resid_pre": self = .residPre(l)
        case "hook_attn_out": self = .attnOut(l)
        case "hook_resid_mid": self = .residMid(l)
        case "hook_mlp_out": self = .mlpOut(l)
        case "hook_resid_post": self = .residPost(l)
        default: return nil
        }
    }

    /// The hook point whose value is the Hugging Face `hidden_states[row]` of a model with `numLayers` blocks.
    public static func hiddenStateRow(_ row: Int, numLayers: Int) -> HookPoint? {
        guard row >= 0, row <= numLayers else { return nil }
        if row == 0 { return .embed }
        if row == numLayers { return .lnFinal }
        return .residPost(row - 1)
    }

    /// The Hugging Face hidden-state row this point equals, if any.
    public func hiddenStateRow(numLayers: Int) -> Int? {
        switch self {
        case .embed: return 0
        case .residPre(let l): return l < numLayers ? l : nil
        case .residPost(let l): return l < numLayers - 1 ? l + 1 : nil
        case .lnFinal: return numLayers
        default: return nil
        }
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let p = HookPoint(name: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown hook point '\(s)'"))
        }
        self = p
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}
