import ArgumentParser
import Foundation

@main
struct Persona: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "persona",
        abstract: "Run open-weight LLMs on CPU, watch persona traits token by token, and steer them.",
        subcommands: [Generate.self, Trace.self, Tokenize.self, ChatTemplateCommand.self, Monitor.self, Contrast.self, Convert.self, Serve.self, Bench.self, Pull.self, Models.self, Extract.self, Evaluate.self, Screen.self, Cluster.self, Traits.self, Project.self])
}

/// Prints to standard error (stdout is reserved for results).
func note(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}
