import ArgumentParser
import Foundation
import PersonaGeneration
import PersonaHub
import PersonaModels
import PersonaTensor

/// `--precision exact|native` and `--kv-cache f32|f16` for the commands that run the model (generate, trace, monitor,
/// extract, evaluate, screen, serve, bench).
struct PrecisionOption: ParsableArguments {
    @Option(help: "Matrix-product precision: exact (f32 activations; matches transformers in f32, the default) or native (activations rounded as llama.cpp does - bf16 for bf16 weights, int8 blocks (q8_0 / q8_1 / q8_K) for every quantised type - for faster prefill / decode, and f16 for f16 weights, as ggml does; f32 computes as exact).")
    var precision: String = "exact"

    var value: MatmulPrecision { MatmulPrecision(rawValue: precision) ?? .exact }

    @Option(name: .customLong("kv-cache"), help: "How the KV cache keeps keys and values: f32 (as computed, the default) or f16 (rounded to f16 as they are written, as llama.cpp's default cache: half the memory, and half the bytes a long context's attention reads each token; outputs move by that rounding).")
    var kvCache: String = "f32"

    func validate() throws {
        if MatmulPrecision(rawValue: precision) == nil { throw ValidationError("--precision must be exact or native (got '\(precision)')") }
        if KVCacheType(rawValue: kvCache) == nil { throw ValidationError("--kv-cache must be f32 or f16 (got '\(kvCache)')") }
    }

    /// Sets the model's precision and the type of the caches it makes from here on.
    func apply(to model: TransformerModel) {
        model.precision = value
        model.kvCacheType = KVCacheType(rawValue: kvCache) ?? .f32
    }
}

struct ModelOption: ParsableArguments {
    @Option(name: .long, help: "A model folder, a .gguf file, or a Hub id org/name[@revision] from the Hugging Face cache.")
    var model: String

    /// `--model` as a path the loader accepts: a folder or file on disk first, else a Hub id resolved
    /// from the local cache (never the network); the error says how to download a missing model.
    func resolvedPath() throws -> String {
        try ModelReference.resolve(model).path
    }
}

struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = off).") var topK: Int = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1 = off).") var topP: Float = 1
    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p x p(max) (0 = off).") var minP: Float = 0
    @Option(name: .customLong("repetition-penalty"), help: "CTRL-style repetition penalty (1 = off).") var repetitionPenalty: Float = 1
    @Option(name: .customLong("frequency-penalty"), parsing: .unconditional,
            help: "OpenAI's: minus this times the times a token was generated so far, -2 to 2 (0 = off).") var frequencyPenalty: Float = 0
    @Option(name: .customLong("presence-penalty"), parsing: .unconditional,
            help: "OpenAI's: minus this for each token generated so far, -2 to 2 (0 = off).") var presencePenalty: Float = 0
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0

    var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty,
                           frequencyPenalty: frequencyPenalty, presencePenalty: presencePenalty, seed: seed)
    }

    func validate() throws {
        do { try parameters.validate() } catch { throw ValidationError("\(error)") }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate a completion; prints only the completion text.")

    @OptionGroup var modelOption: ModelOption
    @Option(help: "The prompt text.") var prompt: String
    @Option(name: .customLong("max-tokens"), help: "Maximum number of new tokens.") var maxTokens: Int = 128
    @OptionGroup var sampling: SamplingOptions
    @Flag(help: "Skip the chat template (implied when the model has none).") var raw = false
    @Option(help: "System prompt (merged into the user turn for templates without a system role).") var system: String?
    @Option(name: .customLong("stop"), help: "Stop string (repeatable).") var stop: [String] = []
    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past the end-of-sequence token.") var ignoreEOS = false
    @Flag(help: "Print speed to standard error.") var verbose = false
    @OptionGroup var precisionOption: PrecisionOption

    func validate() throws {
        if maxTokens < 0 { throw ValidationError("--max-tokens must be >= 0") }
    }

    func run() throws {
        let loaded = try ModelLoader.load(path: modelOption.resolvedPath())
        precisionOption.apply(to: loaded.model)
        let gen = Generator(loaded)
        let ids = try gen.promptIds(for: prompt, system: system, raw: raw)
        let options = GenerationOptions(maxTokens: maxTokens, sampling: sampling.parameters, stopStrings: stop, stopAtEOS: !ignoreEOS)
        let out = FileHandle.standardOutput
        // Printed as it comes, except what a stop string may still cut (held back until it can't).
        let result = try gen.generate(promptIds: ids, options: options) { ev in
            if !ev.released.isEmpty { out.write(Data(ev.released.utf8)) }
            return true
        }
        if !result.unreleased.isEmpty { out.write(Data(result.unreleased.utf8)) }
        if verbose {
            note(String(format: "\n[%d prompt tokens, %d generated, prefill %.1f tok/s, decode %.1f tok/s, finish: %@]",
                        ids.count, result.tokens.count, Double(ids.count) / max(result.prefillSeconds, 1e-9),
                        result.tokensPerSecond, result.finishReason.rawValue))
        }
    }
}
