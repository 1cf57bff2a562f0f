import ArgumentParser
import Foundation
import PersonaCore
import PersonaModels
import PersonaTokenizers

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text as a JSON array.")

    @OptionGroup var modelOption: ModelOption
    @Option(help: "Text to tokenise.") var text: String?
    @Option(help: "Tokenise this file's text instead.") var file: String?
    @Flag(name: .customLong("add-special"), help: "Add the tokenizer's special tokens (e.g. BOS).") var addSpecial = false
    @Flag(help: "Print encode throughput (MB/s, tokens/s) as JSON instead of the ids; the text is encoded line by line.")
    var bench = false

    func validate() throws {
        if (text == nil) == (file == nil) { throw ValidationError("give exactly one of --text or --file") }
    }

    func run() throws {
        let bundle = try ModelLoader.loadTokenizer(path: modelOption.resolvedPath())
        let input: String
        if let file {
            do { input = try String(contentsOfFile: file, encoding: .utf8) } catch {
                throw ValidationError("--file: cannot read \(file): \(error.localizedDescription)")
            }
        } else {
            input = text!
        }
        if bench {
            let lines = fileLines(input).filter { !$0.isEmpty }
            let bytes = lines.reduce(0) { $0 + $1.utf8.count }
            var tokens = 0
            let start = Date()
            for l in lines { tokens += bundle.tokenizer.encode(l, addSpecialTokens: addSpecial).count }
            let s = Date().timeIntervalSince(start)
            print(String(format: "{\"bytes\": %d, \"tokens\": %d, \"seconds\": %.4f, \"mb_per_s\": %.3f, \"tokens_per_s\": %.0f}",
                         bytes, tokens, s, Double(bytes) / 1e6 / s, Double(tokens) / s))
            return
        }
        let ids = bundle.tokenizer.encode(input, addSpecialTokens: addSpecial)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}

struct ChatTemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chat-template",
                                                    abstract: "Render a conversation through the model's chat template.")

    @OptionGroup var modelOption: ModelOption
    @Option(help: "JSON file (- for standard input): a list of {role, content} messages (or {\"messages\": [...]}).") var messages: String
    @Flag(name: .customLong("no-generation-prompt"), help: "Do not append the assistant turn opener.") var noGenerationPrompt = false

    func run() throws {
        let bundle = try ModelLoader.loadTokenizer(path: modelOption.resolvedPath())
        guard let source = bundle.chatTemplate else {
            throw ValidationError("\(modelOption.model): the model has no chat template")
        }
        let data: Data
        do { data = try readInput(messages) } catch {
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
