import ArgumentParser
import Foundation
import PersonaCore

struct Traits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, validate and create trait definitions (persona_vectors JSON schema).",
        subcommands: [List.self, Show.self, Validate.self, New.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the built-in traits.")
        func run() throws {
            for name in BuiltinTraits.names {
                let t = try BuiltinTraits.resolve(name)
                print("\(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(t.positive ?? "")")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a trait (built-in name or .json file).")
        @Argument(help: "Trait name or file.") var trait: String
        @Flag(help: "Print the JSON.") var json = false
        func run() throws {
            let t = try BuiltinTraits.resolve(trait)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
                print(String(decoding: try enc.encode(t), as: UTF8.self))
                return
            }
            print("trait: \(t.name)")
            print("positive (high projection): \(t.positive ?? "(not stated)")")
            for (i, p) in t.instruction.enumerated() {
                print("pair \(i + 1)\n  pos: \(p.pos)\n  neg: \(p.neg)")
            }
            print("\(t.questions.count) extraction questions, \(t.evalQuestions.count) evaluation questions")
            for q in t.questions.prefix(3) { print("  - \(q)") }
            print("judge prompt:\n\(t.evalPrompt)")
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a trait file; exits 1 on errors.")
        @Argument(help: "Trait .json file(s) or built-in names.") var files: [String]
        func run() throws {
            var failed = false
            for f in files {
                let t: TraitDefinition
                do { t = try BuiltinTraits.resolve(f) } catch { print("\(f): error: \(error)"); failed = true; continue }
                let (errors, warnings) = t.validate()
                for e in errors { print("\(f): error: \(e)") }
                for w in warnings { print("\(f): warning: \(w)") }
                if errors.isEmpty { print("\(f): ok (\(t.instruction.count) pairs, \(t.questions.count) + \(t.evalQuestions.count) questions)") }
                failed = failed || !errors.isEmpty
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a template trait file to fill in.")
        @Argument(help: "Trait name.") var name: String
        @Option(help: "Output file (default NAME.json).") var out: String?
        func run() throws {
            if let p = TraitDefinition.nameProblem(name) { throw ValidationError("<name> \"\(name.prefix(60))\" \(p)") }
            let path = out ?? "\(name).json"
            guard !FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(path) exists; not overwriting") }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
            try enc.encode(TraitDefinition.template(name: name)).write(to: URL(fileURLWithPath: path))
            note("wrote \(path): fill in the TODOs, then run `persona traits validate \(path)`")
        }
    }
}
