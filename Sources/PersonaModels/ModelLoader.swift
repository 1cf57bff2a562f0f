import Foundation
import PersonaFormats
import PersonaTensor
import PersonaTokenizers

/// A model ready to run: weights (memory-mapped), its tokenizer and chat template.
public final class LoadedModel: @unchecked Sendable {
    public let model: TransformerModel
    public let tokenizer: TokenizerBundle
    /// The folder or .gguf file it came from.
    public let url: URL
    /// A short name for display and run files (folder or file name without extension).
    public let name: String
    /// Storage type of the bulk of the weights (for display).
    public let weightType: DType

    init(model: TransformerModel, tokenizer: TokenizerBundle, url: URL, name: String, weightType: DType) {
        self.model = model
        self.tokenizer = tokenizer
        self.url = url
        self.name = name
        self.weightType = weightType
    }

    public var config: ModelConfig { model.config }
    /// EOS ids from the tokenizer and the model config together.
    public var eosTokenIds: Set<Int> { tokenizer.tokenizer.eosTokenIds.union(model.config.eosTokenIds) }
}

public enum ModelLoader {
    /// Loads a Hugging Face model folder (config.json + safetensors + tokenizer files) or a `.gguf` file.
    public static func load(path: String) throws -> LoadedModel {
        let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ModelError("\(url.path): no such file or folder")
        }
        if isDir.boolValue {
            // A folder holding a single GGUF and no config.json is treated as that GGUF.
            let config = url.appendingPathComponent("config.json")
            if !FileManager.default.fileExists(atPath: config.path) {
                let ggufs = (try? FileManager.default.contentsOfDirectory(atPath: url.path))?.filter { $0.hasSuffix(".gguf") } ?? []
                if ggufs.count == 1 { return try loadGGUF(url.appendingPathComponent(ggufs[0])) }
                throw ModelError("\(url.path): no config.json (a Hugging Face model folder needs config.json, safetensors weights and tokenizer files)")
            }
            return try loadFolder(url)
        }
        if url.pathExtension.lowercased() == "gguf" { return try loadGGUF(url) }
        throw ModelError("\(url.path): not a model folder or a .gguf file")
    }

    static func loadFolder(_ url: URL) throws -> LoadedModel {
        let config = try ArchitectureRegistry.config(hfConfigAt: url.appendingPathComponent("config.json"))
        let reader = WeightReader(store: try huggingFaceTensors(url, config: config), source: url.path)
        let weights = try loadWeights(config, reader: reader, naming: .huggingFace)
        let tok = try TokenizerBundle.load(directory: url)
        return LoadedModel(model: TransformerModel(config: config, weights: weights), tokenizer: tok, url: url,
                           name: url.lastPathComponent, weightType: weights.layers.first?.wq.dtype ?? .f32)
    }

    static func loadGGUF(_ url: URL) throws -> LoadedModel {
        let file = try GGUFFile(url: url)
        let config = try ArchitectureRegistry.config(gguf: file)
        let reader = WeightReader(store: file, source: url.path)
        let weights = try loadWeights(config, reader: reader, naming: .gguf)
        let tok = try TokenizerBundle.load(gguf: file)
        return LoadedModel(model: TransformerModel(config: config, weights: weights), tokenizer: tok, url: url,
                           name: url.deletingPathExtension().lastPathComponent, weightType: weights.layers.first?.wq.dtype ?? .f32)
    }

    /// Loads only the tokenizer files of a model folder or GGUF (no weights are read).
    public static func loadTokenizer(path: String) throws -> TokenizerBundle {
        let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ModelError("\(url.path): no such file or folder")
        }
        if isDir.boolValue { return try TokenizerBundle.load(directory: url) }
        return try TokenizerBundle.load(gguf: try GGUFFile(url: url))
    }

    /// Loads only the network (no tokenizer), e.g. for traces fed with ids or benchmarks.
    public static func loadNetwork(path: String) throws -> TransformerModel {
        let url = URL(fileURLWithPath: path)
        if url.pathExtension.lowercased() == "gguf" {
            let file = try GGUFFile(url: url)
            let config = try ArchitectureRegistry.config(gguf: file)
            return TransformerModel(config: config, weights: try loadWeights(config, reader: WeightReader(store: file, source: url.path), naming: .gguf))
        }
        let config = try ArchitectureRegistry.config(hfConfigAt: url.appendingPathComponent("config.json"))
        return TransformerModel(config: config, weights: try loadWeights(config, reader: WeightReader(store: try huggingFaceTensors(url, config: config), source: url.path), naming: .huggingFace))
    }

    /// A folder's safetensors; a multimodal checkpoint's language model alone, under the causal LM's names; GPT-2's
    /// and GPT-NeoX's under the shared loader's names and layouts.
    static func huggingFaceTensors(_ url: URL, config: ModelConfig) throws -> TensorStore {
        let store = try SafetensorsModel(directory: url)
        switch config.architecture {
        case "gpt2": return ClassicTensors.gpt2(store, layers: config.numLayers)
        case "gpt_neox": return ClassicTensors.gptNeoX(store, layers: config.numLayers, heads: config.numHeads)
        case "phi": return ClassicTensors.phi(store, layers: config.numLayers)
        case "starcoder2": return ClassicTensors.starCoder2(store, layers: config.numLayers)
        case "gpt_oss": return ClassicTensors.gptOss(store, layers: config.numLayers)
        default: return LanguageModelTensors.wrapping(store) ?? store
        }
    }
}
