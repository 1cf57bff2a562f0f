/// Every hidden state of one forward pass, in the Hugging Face convention.
public struct HiddenStateTrace {
    /// `hiddenStates[i]` is row i ([T, hidden] flattened): 0 = embeddings, i = output of block i-1, L = after the final norm.
    public var hiddenStates: [[Float]]
    /// [T, vocab] flattened.
    public var logits: [Float]

    /// Runs `tokens` from an empty cache, capturing every hidden-state row.
    public static func run(model: TransformerModel, tokens: [Int], hooks extra: [Intervention] = []) throws -> HiddenStateTrace {
        let L = model.config.numLayers
        let buffers = (0...L).map { _ in CaptureBuffer() }
        var hooks = HookSet(extra)
        for row in 0...L {
            hooks.add(Intervention(HookPoint.hiddenStateRow(row, numLayers: L)!, .capture(buffers[row])))
        }
        let cache = model.makeCache(capacity: tokens.count)
        let logits = try model.forward(tokens, cache: cache, hooks: hooks, logits: .all)
        return HiddenStateTrace(hiddenStates: buffers.map { $0.values }, logits: Array(logits))
    }
}
