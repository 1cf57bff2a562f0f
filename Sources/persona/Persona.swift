import ArgumentParser
import Foundation

@main
struct Persona: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "persona",
        abstract: "Run open-weight LLMs on CPU, watch persona traits token by token, and steer them.",
        subcommands: [Generate.self, Trace.self, Tokenize.self, ChatTemplateCommand.self, Monitor.self, Contrast.self, Convert.self, Serve.self, Bench.self, Pull.self, Models.self, Extract.self, Evaluate.self, Screen.self, Cluster.self, Traits.self, Project.self])

    /// As AsyncParsableCommand's `main`, except for a ValidationError thrown while a command runs (a check that
    /// needs the files, such as `--quantize Q9` or a trait the vectors lack): the library would follow it with the
    /// root's usage ("Usage: persona <subcommand>"), which says nothing about that command; this names the
    /// command's help instead. Same exit status (64).
    static func main() async {
        let command: ParsableCommand
        do { command = try await asyncParseAsRoot() } catch { exit(withError: error) }
        do {
            var c = command
            if var a = c as? AsyncParsableCommand { try await a.run() } else { try c.run() }
        } catch let e as ValidationError {
            let path = (["persona"] + commandPath(to: type(of: command), in: Persona.self)).joined(separator: " ")
            note("Error: \(e.message)\nSee '\(path) --help' for its options.")
            exit(withError: ExitCode.validationFailure)
        } catch {
            exit(withError: error)
        }
    }

    /// Subcommand names from `root` down to `target` (empty when target is root or not found).
    static func commandPath(to target: ParsableCommand.Type, in root: ParsableCommand.Type) -> [String] {
        for sub in root.configuration.subcommands {
            if sub == target { return [sub._commandName] }
            let rest = commandPath(to: target, in: sub)
            if !rest.isEmpty { return [sub._commandName] + rest }
        }
        return []
    }
}

/// Prints to standard error (stdout is reserved for results).
func note(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}
