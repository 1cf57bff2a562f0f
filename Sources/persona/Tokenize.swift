import ArgumentParser
import Foundation
import PersonaModels
import PersonaTokenizers

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text as a JSON array.")

    @OptionGroup var modelOption: ModelOption
    @Option(help: "Text to tokenise.") var text: String
    @Flag(name: .customLong("add-special"), help: "Add the tokenizer's special tokens (e.g. BOS).") var addSpecial = false

    func run() throws {
        let bundle = try ModelLoader.loadTokenizer(path: modelOption.model)
        let ids = bundle.tokenizer.encode(text, addSpecialTokens: addSpecial)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}

struct ChatTemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chat-template",
                                                    abstract: "Render a conversation through the model's chat template.")

    @OptionGroup var modelOption: ModelOption
    @Option(help: "JSON file: a list of {role, content} messages (or {\"messages\": [...]}).") var messages: String
    @Flag(name: .customLong("no-generation-prompt"), help: "Do not append the assistant turn opener.") var noGenerationPrompt = false

    func run() throws {
        let bundle = try ModelLoader.loadTokenizer(path: modelOption.model)
        guard let source = bundle.chatTemplate else {
            throw ValidationError("\(modelOption.model): the model has no chat template")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: messages)) } catch {
            throw ValidationError("--messages: cannot read \(messages): \(error.localizedDescription)")
        }
        let list: [ChatMessage]
        if let l = try? JSONDecoder().decode([ChatMessage].self, from: data) {
            list = l
        } else if let w = try? JSONDecoder().decode([String: [ChatMessage]].self, from: data), let l = w["messages"] {
            list = l
        } else {
            throw ValidationError("--messages: \(messages) is not a JSON list of {\"role\", \"content\"} objects")
        }
        let t = try ChatTemplate(source: source)
        let text = try t.renderMergingSystemIfUnsupported(messages: list, addGenerationPrompt: !noGenerationPrompt,
                                                          bosToken: bundle.bosToken, eosToken: bundle.eosToken)
        FileHandle.standardOutput.write(text.data(using: .utf8)!)
    }
}
