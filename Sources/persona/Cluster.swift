import ArgumentParser
import Foundation
import PersonaCore

struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run extraction on a cluster's own scheduler: Slurm job arrays (Kubernetes: examples/cluster/).",
        subcommands: [ClusterSlurm.self])
}

/// Writes a job-array script (one task per trait and shard) and a merge script, and submits both with sbatch, the
/// merge after the array. Each task is a plain `persona extract` that reads its share from SLURM_ARRAY_TASK_ID and
/// resumes its own run folder, so a requeued or preempted task picks up where it stopped.
struct ClusterSlurm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm",
        abstract: "Extract traits as a Slurm job array plus a dependent merge job; prints the job ids.",
        discussion: """
        Writes OUT/slurm/extract.sbatch (array 0..<traits x shards-per-trait; task i extracts trait i / K, shard \
        i % K, in OUT/<trait>/shards/<i>-of-<K>) and OUT/slurm/merge.sbatch (`persona extract merge OUT`), then \
        submits them: the merge with --dependency=afterany on the array, and it refuses to merge while a shard is \
        missing or unfinished, so a task that failed can be requeued (`scontrol requeue JOB_i`) and the merge \
        resubmitted (`sbatch OUT/slurm/merge.sbatch`). Options after `--` go to every `persona extract` task, \
        e.g. `-- --judge openai --judge-base-url http://judge:8000/v1 --max-tokens 128`. OUT must be on a file \
        system every node sees. Logs: OUT/slurm/logs.
        """)

    @Option(help: "The model (a path every node can read).") var model: String
    @Option(help: "Traits: all (the built-in ones), or a,b,c (names or .json files).") var traits: String = "all"
    @Option(help: "Output folder on a shared file system.") var out: String
    @Option(name: .customLong("shards-per-trait"), help: "Array tasks per trait.") var shardsPerTrait: Int = 1
    @Option(help: "Slurm partition (default: the cluster's default).") var partition: String?
    @Option(help: "Time limit per task, e.g. 02:00:00.") var time: String?
    @Option(name: .customLong("cpus-per-task"), help: "Cores per task (the engine uses this many threads).") var cpusPerTask: Int = 1
    @Option(help: "Memory per task, e.g. 8G.") var mem: String?
    @Option(name: .customLong("sbatch-option"), help: "An extra #SBATCH line for both jobs, e.g. --account=lab (repeatable).")
    var sbatchOptions: [String] = []
    @Option(help: "The persona binary the nodes run (default: this one).") var persona: String?
    @Flag(name: .customLong("dry-run"), help: "Write the scripts and print the sbatch commands without submitting.") var dryRun = false
    @Argument(parsing: .postTerminator, help: "Options for every `persona extract` task (after --).") var extractOptions: [String] = []

    func validate() throws {
        if shardsPerTrait < 1 { throw ValidationError("--shards-per-trait must be >= 1") }
        if cpusPerTask < 1 { throw ValidationError("--cpus-per-task must be >= 1") }
        for o in extractOptions where ["--shard", "--out", "--trait", "--model"].contains(where: { o == $0 || o.hasPrefix($0 + "=") }) {
            throw ValidationError("\(o) is set by `persona cluster slurm` itself; give it as this command's option")
        }
    }

    func run() throws {
        let names = traits == "all" ? BuiltinTraits.names
            : traits.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ValidationError("--traits names no trait") }
        for n in names { _ = try BuiltinTraits.resolve(n) }   // a typo fails here, not on the nodes
        let fm = FileManager.default
        let outURL = URL(fileURLWithPath: out).standardizedFileURL
        let slurmDir = outURL.appendingPathComponent("slurm"), logs = slurmDir.appendingPathComponent("logs")
        try fm.createDirectory(at: logs, withIntermediateDirectories: true)
        let binary = try persona ?? Self.currentExecutable()
        let tasks = names.count * shardsPerTrait

        var common = ["#!/bin/bash"]
        if let partition { common.append("#SBATCH --partition=\(partition)") }
        if let time { common.append("#SBATCH --time=\(time)") }
        if let mem { common.append("#SBATCH --mem=\(mem)") }
        common.append("#SBATCH --cpus-per-task=\(cpusPerTask)")
        common += sbatchOptions.map { "#SBATCH \($0)" }

        let traitList = names.joined(separator: ",")
        // Relative paths would be read from wherever the job starts: make the model's absolute when it is a file here.
        let model = fm.fileExists(atPath: self.model) ? URL(fileURLWithPath: self.model).standardizedFileURL.path : self.model
        let extractArgs = ["extract", "--model", model, "--trait", traitList, "--out", outURL.path] + extractOptions
        let extract = common + [
            "#SBATCH --job-name=persona-extract",
            "#SBATCH --array=0-\(tasks - 1)",
            "#SBATCH --requeue",
            "#SBATCH --open-mode=append",
            "#SBATCH --output=\(logs.path)/extract-%A_%a.out",
            "# Written by `persona cluster slurm`: \(names.count) trait(s) x \(shardsPerTrait) shard(s); task i does trait i / \(shardsPerTrait), shard i % \(shardsPerTrait).",
            "# persona reads SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT itself and resumes its run folder when requeued.",
            "set -euo pipefail",
            "export PERSONA_THREADS=${SLURM_CPUS_PER_TASK:-\(cpusPerTask)}",
            "echo \"$(date -u +%FT%TZ) task ${SLURM_ARRAY_TASK_ID} of ${SLURM_ARRAY_TASK_COUNT} on $(hostname), restart ${SLURM_RESTART_COUNT:-0}\"",
            "exec " + ([binary] + extractArgs).map(Self.shellQuoted).joined(separator: " "),
        ]
        let merge = common + [
            "#SBATCH --job-name=persona-merge",
            "#SBATCH --output=\(logs.path)/merge-%j.out",
            "# Runs after the extraction array ends (afterany); refuses missing or unfinished shards.",
            "set -euo pipefail",
            "export PERSONA_THREADS=${SLURM_CPUS_PER_TASK:-\(cpusPerTask)}",
            "exec " + [binary, "extract", "merge", outURL.path, "--model", model].map(Self.shellQuoted).joined(separator: " "),
        ]
        let extractScript = slurmDir.appendingPathComponent("extract.sbatch"), mergeScript = slurmDir.appendingPathComponent("merge.sbatch")
        try (extract.joined(separator: "\n") + "\n").write(to: extractScript, atomically: true, encoding: .utf8)
        try (merge.joined(separator: "\n") + "\n").write(to: mergeScript, atomically: true, encoding: .utf8)
        print("wrote \(extractScript.path) (\(tasks) tasks: \(names.joined(separator: ", ")) x \(shardsPerTrait) shard\(shardsPerTrait == 1 ? "" : "s")) and \(mergeScript.path)")

        if dryRun {
            print("sbatch --parsable \(extractScript.path)")
            print("sbatch --parsable --dependency=afterany:<array job id> \(mergeScript.path)")
            return
        }
        let arrayJob = try Self.sbatch(["--parsable", extractScript.path])
        let mergeJob = try Self.sbatch(["--parsable", "--dependency=afterany:\(arrayJob)", mergeScript.path])
        print("array job \(arrayJob): \(tasks) extraction tasks (squeue -j \(arrayJob); logs in \(logs.path))")
        print("merge job \(mergeJob): runs when the array has ended; vectors in \(outURL.path)\(names.count > 1 ? "/<trait>" : "")/vectors.safetensors")
    }

    /// Runs sbatch and returns the job id it prints with --parsable ("id" or "id;cluster").
    static func sbatch(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sbatch"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw ValidationError("cannot run sbatch (\(error.localizedDescription)); is Slurm installed here?") }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: o, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard p.terminationStatus == 0, let id = text.split(separator: ";").first, Int(id) != nil else {
            throw ValidationError("sbatch \(args.joined(separator: " ")) failed (exit \(p.terminationStatus)): \(String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return String(id)
    }

    static func currentExecutable() throws -> String {
        if let u = Bundle.main.executableURL { return u.resolvingSymlinksInPath().path }
        throw ValidationError("cannot tell where this persona binary is; pass --persona PATH")
    }

    /// One shell word. Scalar by scalar and literal: "'" followed by a combining mark is one Character that is not
    /// "'", and was left unescaped inside the quotes, ending them early.
    static func shellQuoted(_ s: String) -> String {
        let plain = "-_./=:,@+%".unicodeScalars
        if !s.isEmpty, s.unicodeScalars.allSatisfy({ ($0.isASCII && $0.properties.isAlphabetic) || ("0"..."9").contains($0) || plain.contains($0) }) {
            return s
        }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''", options: .literal) + "'"
    }
}

/// A command's share of the work: `--shard i/N`, else a job array task's (Slurm, Kubernetes; said on stderr), else all.
func workShare(_ explicit: String?, option: String = "--shard") throws -> Shard {
    if let explicit {
        do { return try Shard(parsing: explicit) } catch { throw ValidationError("\(error)") }
    }
    guard let task = try ArrayTask.fromEnvironment(ProcessInfo.processInfo.environment) else { return .whole }
    note("work share from the environment: \(task) (pass \(option) 0/1 to do all of it)")
    return Shard(index: task.index, count: task.count)
}
