import Foundation
import PersonaFormats

/// Everything tokenizer-related found in a model folder or a GGUF file.
public struct TokenizerBundle: Sendable {
    public let tokenizer: any Tokenizer
    /// Jinja chat template, if the model ships one.
    public let chatTemplate: String?
    /// BOS / EOS token strings, for template rendering.
    public let bosToken: String?
    public let eosToken: String?

    public init(tokenizer: any Tokenizer, chatTemplate: String?, bosToken: String?, eosToken: String?) {
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.bosToken = bosToken
        self.eosToken = eosToken
    }

    /// Loads tokenizer.json (required) plus tokenizer_config.json, generation_config.json,
    /// special_tokens_map.json and chat_template.jinja / chat_template.json when present.
    public static func load(directory: URL) throws -> TokenizerBundle {
        let tjURL = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tjURL.path) else {
            throw TokenizerError("\(tjURL.path): not found (only tokenizer.json tokenizers are supported for model folders)")
        }
        let root = try readJSON(tjURL)
        let config = try readJSONIfPresent(directory.appendingPathComponent("tokenizer_config.json"))
        let specialMap = try readJSONIfPresent(directory.appendingPathComponent("special_tokens_map.json"))
        let genConfig = try readJSONIfPresent(directory.appendingPathComponent("generation_config.json"))

        let bosToken = tokenString(config?["bos_token"]) ?? tokenString(specialMap?["bos_token"])
        let eosToken = tokenString(config?["eos_token"]) ?? tokenString(specialMap?["eos_token"])
        var extraEos: [Int] = []
        if let g = genConfig {
            if let one = g.int("eos_token_id") { extraEos.append(one) }
            if let many = g.array("eos_token_id") { extraEos += many.compactMap(\.int) }
        }
        let tok = try HFTokenizerJSON.build(root, bosToken: bosToken, eosTokens: eosToken.map { [$0] } ?? [],
                                            extraBosId: genConfig?.int("bos_token_id"), extraEosIds: extraEos,
                                            bosOverride: config?.bool("add_bos_token"))

        var template = try readChatTemplate(from: config)
        if template == nil {
            let jinja = directory.appendingPathComponent("chat_template.jinja")
            if FileManager.default.fileExists(atPath: jinja.path) {
                do { template = try String(contentsOf: jinja, encoding: .utf8) }
                catch { throw TokenizerError("\(jinja.path): not readable as UTF-8") }
            }
        }
        if template == nil, let ct = try readJSONIfPresent(directory.appendingPathComponent("chat_template.json")) {
            template = try readChatTemplate(from: ct)
        }
        return TokenizerBundle(tokenizer: tok, chatTemplate: template, bosToken: bosToken, eosToken: eosToken)
    }

    /// Loads from a model folder (tokenizer.json) or a `.gguf` file; a folder without
    /// tokenizer.json but with exactly one `.gguf` file uses that file's tokenizer.
    public static func load(path: URL) throws -> TokenizerBundle {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDir) else {
            throw TokenizerError("\(path.path): no such file or folder")
        }
        if !isDir.boolValue {
            guard path.pathExtension.lowercased() == "gguf" else {
                throw TokenizerError("\(path.path): expected a model folder or a .gguf file")
            }
            return try load(gguf: try GGUFFile(url: path))
        }
        if FileManager.default.fileExists(atPath: path.appendingPathComponent("tokenizer.json").path) {
            return try load(directory: path)
        }
        let ggufs = ((try? FileManager.default.contentsOfDirectory(atPath: path.path)) ?? []).filter { $0.lowercased().hasSuffix(".gguf") }
        if ggufs.count == 1 { return try load(gguf: try GGUFFile(url: path.appendingPathComponent(ggufs[0]))) }
        return try load(directory: path)  // throws, naming the missing tokenizer.json
    }

    /// Loads the tokenizer embedded in a GGUF file (`tokenizer.ggml.model` "llama" or "gpt2").
    public static func load(gguf: GGUFFile) throws -> TokenizerBundle {
        let tok = try GGUFTokenizer.build(gguf.metadata)
        let eos = gguf.metadata["tokenizer.ggml.eos_token_id"]?.int
        return TokenizerBundle(tokenizer: tok, chatTemplate: gguf.metadata["tokenizer.chat_template"]?.string,
                               bosToken: tok.bosTokenId.flatMap(tok.tokenString), eosToken: eos.flatMap(tok.tokenString))
    }
}

func readJSON(_ url: URL) throws -> JSONObject {
    let data: Data
    do { data = try Data(contentsOf: url) } catch { throw TokenizerError("\(url.path): not readable") }
    let v: JSONValue
    do { v = try JSONValue.parse(data) } catch { throw TokenizerError("\(url.path): \(error)") }
    return try JSONObject(v, path: url.lastPathComponent)
}

private func readJSONIfPresent(_ url: URL) throws -> JSONObject? {
    FileManager.default.fileExists(atPath: url.path) ? try readJSON(url) : nil
}

/// bos_token / eos_token are either a string or an AddedToken object {"content": ...}.
private func tokenString(_ v: JSONValue?) -> String? {
    v?.string ?? v?["content"]?.string
}

/// "chat_template" is a string, or a list of {name, template} (take "default").
private func readChatTemplate(from obj: JSONObject?) throws -> String? {
    guard let obj, obj.has("chat_template") else { return nil }
    if let s = obj.string("chat_template") { return s }
    if let list = obj.array("chat_template") {
        var first: String?
        for d in list {
            if d["name"]?.string == "default", let t = d["template"]?.string { return t }
            if first == nil { first = d["template"]?.string }
        }
        return first
    }
    throw TokenizerError("\(obj.path).chat_template: expected a string or a list of {name, template}")
}
