import ArgumentParser
import Foundation
import PersonaFormats
import PersonaModels
import PersonaTensor

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one forward pass and save every hidden state and the logits as safetensors.",
        discussion: """
        Writes F32 tensors hidden_states.{i} [T, hidden] for i = 0...L in the Hugging Face convention \
        (0 = embeddings after any scaling, i = output of block i-1, L = last block after the final norm) \
        and logits [T, vocab].
        """)

    @OptionGroup var modelOption: ModelOption
    @Option(help: "Comma-separated token ids, fed as given (no BOS added).") var ids: String?
    @Option(help: "Prompt text, tokenised with the model's special tokens (BOS), no chat template.") var prompt: String?
    @Option(help: "Output .safetensors file.") var out: String
    @OptionGroup var precisionOption: PrecisionOption

    func validate() throws {
        if (ids == nil) == (prompt == nil) { throw ValidationError("give exactly one of --ids or --prompt") }
    }

    func run() throws {
        let tokens: [Int]
        let model: TransformerModel
        if let ids {
            var parsed: [Int] = []
            for part in ids.split(separator: ",", omittingEmptySubsequences: false) {
                guard let v = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--ids: '\(part)' is not an integer")
                }
                parsed.append(v)
            }
            tokens = parsed
            model = try ModelLoader.loadNetwork(path: modelOption.resolvedPath())
        } else {
            let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
            tokens = loaded.tokenizer.tokenizer.encode(prompt!, addSpecialTokens: true)
            model = loaded.model
        }
        if tokens.isEmpty { throw ValidationError("no tokens to trace") }
        precisionOption.apply(to: model)
        let result = try HiddenStateTrace.run(model: model, tokens: tokens)
        var tensors: [(name: String, dtype: DType, shape: [Int], data: Data)] = []
        for (i, h) in result.hiddenStates.enumerated() {
            tensors.append((name: "hidden_states.\(i)", dtype: .f32, shape: [tokens.count, model.config.hiddenSize], data: h.withUnsafeBufferPointer { Data(buffer: $0) }))
        }
        tensors.append((name: "logits", dtype: .f32, shape: [tokens.count, model.config.vocabSize], data: result.logits.withUnsafeBufferPointer { Data(buffer: $0) }))
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "input_ids": tokens.map(String.init).joined(separator: ",")],
                                    to: URL(fileURLWithPath: out))
    }
}
