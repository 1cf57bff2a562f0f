import Foundation
import XCTest
@testable import PersonaTestSupport

/// Work shared out by a job array's environment (here a Kubernetes Indexed Job's; Slurm's is checked on a real
/// cluster by Scripts/slurm/cluster_test.sh in CI): every task finds its share, writes its own folder or file, and
/// the merge equals one process doing all of it, byte for byte.
final class ShardingCLITests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Repository.temporaryDirectory("sharding") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func persona(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Subprocess.run(try Subprocess.personaBinary(besides: Self.self), args,
                           environment: Subprocess.environment(merging: env, droppingPrefix: "SLURM_"))
    }

    /// `cluster slurm --dry-run`: the task's exec line gives every argument to the binary unchanged, whatever quotes,
    /// shell syntax or combining marks it holds (a stand-in binary prints its arguments one per line).
    func testClusterScriptPassesArgumentsVerbatim() throws {
        let printer = dir.appendingPathComponent("print-args")
        try "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n".write(to: printer, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: printer.path)
        let nasty = ["it'\u{301}s; touch \(dir.path)/pwned", "$(touch \(dir.path)/pwned2) `id` \"q\" \\", "café", "a b"]
        let out = dir.appendingPathComponent("cl")
        let r = try persona(["cluster", "slurm", "--model", "m.gguf", "--traits", "evil", "--out", out.path, "--persona", printer.path,
                             "--dry-run", "--", "--judge-model", nasty[0], "--judge-base-url", nasty[1], "--system", nasty[2], nasty[3]])
        XCTAssertEqual(r.status, 0, r.stderr)
        let script = try String(contentsOf: out.appendingPathComponent("slurm/extract.sbatch"), encoding: .utf8)
        let exec = try XCTUnwrap(script.split(separator: "\n").first { $0.hasPrefix("exec ") })
        let shell = try Subprocess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", String(exec)])
        XCTAssertEqual(shell.status, 0, shell.stderr)
        let args = shell.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        XCTAssertEqual(Array(args.suffix(7)).map { Array($0.unicodeScalars) },
                       (["--judge-model", nasty[0], "--judge-base-url", nasty[1], "--system", nasty[2], nasty[3]]).map { Array($0.unicodeScalars) })
        for f in ["pwned", "pwned2"] { XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), f) }
    }

    func testExtractSharesFromTheEnvironmentMergeToTheSingleRun() throws {
        let model = try Repository.stories260K.path
        let settings = ["--model", model, "--trait", "evil,refusal", "--judge", "none", "--questions", "3", "--eval-count", "2", "--max-tokens", "8"]
        let out = dir.appendingPathComponent("array").path
        for i in 0..<4 {
            let r = try persona(["extract"] + settings + ["--out", out], env: ["JOB_COMPLETION_INDEX": "\(i)", "PERSONA_SHARD_COUNT": "4"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("work share from the environment: task \(i) of 4 (Kubernetes Indexed Job"), r.stderr)
            XCTAssertTrue(r.stderr.contains(i < 2 ? "trait evil, shard \(i)/2" : "trait refusal, shard \(i - 2)/2"), r.stderr)
        }
        // Before the merge nothing is a vector; one shard missing is refused by name.
        try FileManager.default.moveItem(atPath: out + "/refusal/shards/1-of-2", toPath: dir.appendingPathComponent("aside").path)
        let early = try persona(["extract", "merge", out, "--model", model])
        XCTAssertNotEqual(early.status, 0)
        XCTAssertTrue(early.stderr.contains("shards 1 of 2 are missing"), early.stderr)
        try FileManager.default.moveItem(atPath: dir.appendingPathComponent("aside").path, toPath: out + "/refusal/shards/1-of-2")
        let merged = try persona(["extract", "merge", out, "--model", model])
        XCTAssertEqual(merged.status, 0, merged.stderr)

        let single = dir.appendingPathComponent("single").path
        let s = try persona(["extract"] + settings + ["--out", single])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertFalse(s.stderr.contains("work share"), "no array environment: the whole run")
        for t in ["evil", "refusal"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: "\(out)/\(t)/vectors.safetensors"))
            let b = try Data(contentsOf: URL(fileURLWithPath: "\(single)/\(t)/vectors.safetensors"))
            XCTAssertTrue(a == b, "\(t): merged shards differ from the single run")
        }
        // The folder of trait folders is a --vectors folder.
        let m = try persona(["monitor", "--model", model, "--vectors", out, "--prompt", "Once", "--max-tokens", "2",
                             "--out", dir.appendingPathComponent("m.json").path])
        XCTAssertEqual(m.status, 0, m.stderr)
        let doc = try String(contentsOf: dir.appendingPathComponent("m.json"), encoding: .utf8)
        XCTAssertTrue(doc.contains("\"evil\"") && doc.contains("\"refusal\""))
    }

    func testMonitorPromptSetSharesMergeInPromptOrder() throws {
        let model = try Repository.stories260K.path
        let prompts = dir.appendingPathComponent("p.jsonl")
        try ["Once upon a time", "The cat", "Lily was", "A big dog", "The sun"].map { "{\"prompt\": \"\($0)\"}" }
            .joined(separator: "\n").write(to: prompts, atomically: true, encoding: .utf8)
        let common = ["monitor", "--model", model, "--vectors", Repository.root.appendingPathComponent("examples/vectors/stories260K").path,
                      "--prompts", prompts.path, "--max-tokens", "6", "--temperature", "0"]
        let out = dir.appendingPathComponent("runs.json").path
        for i in 0..<2 {
            let r = try persona(common + ["--out", out], env: ["SLURM_ARRAY_TASK_ID": "\(i)", "SLURM_ARRAY_TASK_COUNT": "2"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs.shard-\(i)-of-2.json").path))
        }
        let merge = try persona(["monitor", "merge", out])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        let whole = dir.appendingPathComponent("whole.json").path
        XCTAssertEqual(try persona(common + ["--shard", "0/1", "--out", whole], env: ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"]).status, 0)
        func runs(_ p: String) throws -> [[String: Any]] {
            let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: p)))
            return (o as? [[String: Any]]) ?? ((o as? [String: Any])?["runs"] as? [[String: Any]]) ?? []
        }
        let a = try runs(out), b = try runs(whole)
        XCTAssertEqual(a.count, 5)
        XCTAssertEqual(a.map { $0["prompt"] as? String }, b.map { $0["prompt"] as? String })
        let ids = a.map { $0["token_ids"] as? [Int] ?? [] }
        XCTAssertTrue(ids.allSatisfy { !$0.isEmpty })
        XCTAssertEqual(ids, b.map { $0["token_ids"] as? [Int] ?? [] })
    }

    /// `evaluate steering` split over a job array's tasks (shared folder, one log per task), then summarised:
    /// the same sweep.json as one process.
    func testEvaluateSteeringSharesSummariseToTheSingleRun() throws {
        let model = try Repository.smolLM2.path
        let common = ["evaluate", "steering", "--model", model, "--vectors", Repository.root.appendingPathComponent("examples/vectors/smollm2").path,
                      "--trait", "evil", "--questions", "3", "--rows", "12", "--coefs", "2", "--max-tokens", "8"]
        let shared = dir.appendingPathComponent("shared").path
        for i in 0..<2 {
            let r = try persona(common + ["--out", shared], env: ["SLURM_ARRAY_TASK_ID": "\(i)", "SLURM_ARRAY_TASK_COUNT": "2"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("shard \(i)/2"), r.stdout)
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(shared)/samples.shard-\(i)-of-2.jsonl"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(shared)/sweep.json"), "a shard does not summarise")
        let summary = try persona(common + ["--out", shared])
        XCTAssertEqual(summary.status, 0, summary.stderr)
        XCTAssertTrue(summary.stderr.contains("resuming: 6 of 6"), summary.stderr)
        let single = dir.appendingPathComponent("single").path
        XCTAssertEqual(try persona(common + ["--out", single]).status, 0)
        func load(_ p: String) throws -> [String: Any] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: p + "/sweep.json"))) as? [String: Any])
        }
        let a = try load(shared), b = try load(single)
        XCTAssertEqual((a["answers"] as? [[String: Any]])?.map { $0["answer"] as? String }, (b["answers"] as? [[String: Any]])?.map { $0["answer"] as? String })
        XCTAssertEqual(try JSONSerialization.data(withJSONObject: a["cells"] as Any, options: [.sortedKeys]),
                       try JSONSerialization.data(withJSONObject: b["cells"] as Any, options: [.sortedKeys]))
    }
}
