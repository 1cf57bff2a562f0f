/// Every hidden state of one forward pass, in the Hugging Face convention.
public struct HiddenStateTrace {
    /// `hiddenStates[i]` is row i ([T, hidden] flattened): 0 = embeddings, i = output of block i-1, L = after the final norm.
    public var hiddenStates: [[Float]]
    /// [T, vocab] flattened.
    public var logits: [Float]

    /// Runs `tokens` from an empty cache, capturing every hidden-state row.
    public static func run(model: TransformerModel, tokens: [Int], hooks extra: [Intervention] = []) throws -> HiddenStateTrace {
        let (hooks, buffers) = captureEveryRow(numLayers: model.config.numLayers, after: extra)
        let cache = model.makeCache(capacity: tokens.count)
        let logits = try model.forward(batch: [BatchSequence(tokens: tokens, cache: cache, hooks: hooks)], logits: .all) { Array($0) }
        return HiddenStateTrace(hiddenStates: buffers.map { $0.values }, logits: logits)
    }

    /// Runs several token sequences (each from an empty cache) in one batched forward pass and returns one trace
    /// per sequence, in order. `logits: .none` skips the output head (activation statistics do not need it);
    /// `.all` fills each trace's logits.
    public static func run(model: TransformerModel, batch: [[Int]], logits mode: LogitsMode = .all) throws -> [HiddenStateTrace] {
        guard !batch.isEmpty else { return [] }
        let L = model.config.numLayers, V = model.config.vocabSize
        var buffers: [[CaptureBuffer]] = []
        var seqs: [BatchSequence] = []
        for tokens in batch {
            let (hooks, rows) = captureEveryRow(numLayers: L)
            buffers.append(rows)
            seqs.append(BatchSequence(tokens: tokens, cache: model.makeCache(capacity: tokens.count), hooks: hooks))
        }
        return try model.forward(batch: seqs, logits: mode == .all ? .all : .none) { out in
            var traces: [HiddenStateTrace] = []
            var row = 0
            for (b, tokens) in batch.enumerated() {
                let logits = mode == .all ? Array(out[(row * V)..<((row + tokens.count) * V)]) : []
                traces.append(HiddenStateTrace(hiddenStates: buffers[b].map { $0.values }, logits: logits))
                row += tokens.count
            }
            return traces
        }
    }

    /// Hooks that copy every hidden-state row 0...L (after the interventions in `extra`), and their buffers.
    static func captureEveryRow(numLayers L: Int, after extra: [Intervention] = []) -> (HookSet, [CaptureBuffer]) {
        let buffers = (0...L).map { _ in CaptureBuffer() }
        var hooks = HookSet(extra)
        for row in 0...L { hooks.add(Intervention(HookPoint.hiddenStateRow(row, numLayers: L)!, .capture(buffers[row]))) }
        return (hooks, buffers)
    }
}
