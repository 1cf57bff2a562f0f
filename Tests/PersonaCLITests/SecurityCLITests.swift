import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import PersonaTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The built `persona` binary, run as a user would: `serve` refuses to expose itself without a key and never prints
/// the key; `monitor --out` and `serve --runs` say clearly when a folder is read-only or the disk is full (and
/// `monitor` says so before generating).
final class SecurityCLITests: XCTestCase {
    var binary: URL { get throws { try Subprocess.personaBinary(besides: SecurityCLITests.self) } }

    /// Runs the binary to completion (or kills it after `timeout` seconds), without $PERSONA_API_KEY.
    func run(_ args: [String], timeout: TimeInterval = 120) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = try binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "PERSONA_API_KEY")
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { p.terminate() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    var stories: String { get throws { try TestPaths.stories260K.path } }
    var vectors: String {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/vectors/stories260K").path
    }

    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("persona-sec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    /// A folder no file can be created in: chmod 0555 for a normal user; as root (which ignores permissions) a
    /// read-only tmpfs, or a skip where mounting is not allowed.
    func readOnlyDir() throws -> URL {
        let d = try tempDir().appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        if getuid() != 0 {
            chmod(d.path, 0o555)
            addTeardownBlock { chmod(d.path, 0o755) }
            return d
        }
        try mountTmpfs(at: d, options: "ro,size=64k")
        return d
    }

    /// A 64 KiB tmpfs filled to the last few KiB (root only; skipped where mounting is not allowed).
    func fullDir() throws -> URL {
        guard getuid() == 0 else { throw XCTSkip("a full file system needs a tmpfs mount (root)") }
        let d = try tempDir().appendingPathComponent("full")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        try mountTmpfs(at: d, options: "size=64k")
        // Fill it: write until the file system refuses.
        let fd = open(d.appendingPathComponent("filler").path, O_WRONLY | O_CREAT, 0o600)
        let block = [UInt8](repeating: 0, count: 4096)
        while write(fd, block, block.count) > 0 {}
        close(fd)
        return d
    }

    func mountTmpfs(at d: URL, options: String) throws {
        let m = Process()
        m.executableURL = URL(fileURLWithPath: "/bin/mount")
        m.arguments = ["-t", "tmpfs", "-o", options, "tmpfs", d.path]
        m.standardError = Pipe()
        guard (try? m.run()) != nil else { throw XCTSkip("cannot run mount") }
        m.waitUntilExit()
        guard m.terminationStatus == 0 else { throw XCTSkip("mounting a tmpfs is not allowed here") }
        addTeardownBlock {
            let u = Process()
            u.executableURL = URL(fileURLWithPath: "/bin/umount")
            u.arguments = [d.path]
            try? u.run()
            u.waitUntilExit()
        }
    }

    func testServeRefusesAnExposedHostWithoutAKey() throws {
        let runs = try tempDir()
        let r = try run(["serve", "--host", "0.0.0.0", "--port", "18765", "--runs", runs.path, "--no-examples"], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--api-key"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs.appendingPathComponent("runs.sqlite").path), "it must refuse before opening anything")
    }

    func testServeNeverPrintsTheKey() throws {
        let runs = try tempDir()
        let key = "cli-S3cret-\(UUID().uuidString)"
        let port = 18000 + Int(getpid() % 1000)
        let p = Process()
        p.executableURL = try binary
        p.arguments = ["serve", "--port", "\(port)", "--runs", runs.path, "--api-key", key]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        defer { if p.isRunning { p.terminate() }; p.waitUntilExit() }
        // Wait for it to answer, then use it with and without the key.
        var up = false
        for _ in 0 ..< 300 where !up {
            usleep(50_000)
            up = (try? rawHTTP(port: port, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) != nil
        }
        XCTAssertTrue(up, "serve did not start")
        XCTAssertEqual(try rawHTTP(port: port, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").1.prefix(12), "HTTP/1.1 401")
        XCTAssertEqual(try rawHTTP(port: port, "GET /api/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nConnection: close\r\n\r\n").1.prefix(12), "HTTP/1.1 200")
        p.terminate()
        p.waitUntilExit()
        let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(printed.contains("http://127.0.0.1:\(port)/"), printed)
        XCTAssertFalse(printed.contains(key), "the key was printed:\n\(printed)")
    }

    func testMonitorOutIntoReadOnlyFolderFailsBeforeGenerating() throws {
        let ro = try readOnlyDir()
        let t0 = Date()
        let r = try run(["monitor", "--model", stories, "--vectors", vectors, "--prompt", "Once upon a time",
                         "--max-tokens", "4000", "--out", ro.appendingPathComponent("run.json").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--out \(ro.path)/run.json: cannot create files in \(ro.path)"), r.output)
        XCTAssertTrue(r.output.contains("Read-only file system") || r.output.contains("Permission denied"), r.output)
        XCTAssertFalse(r.output.contains("Domain="), "a raw Foundation error: \(r.output)")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 60, "it should refuse before generating 4000 tokens")
    }

    /// A trait file whose "name" is a path ("../escaped") is refused before extraction: with several traits,
    /// `extract` writes OUT/NAME/, and it used to write its vectors and CSVs beside --out, not in it. `traits new`
    /// refuses such a name too (it gave a raw Foundation error for "a/b" and wrote ".json" for "").
    func testTraitNamedLikeAPathWritesNothingOutsideOut() throws {
        let d = try tempDir()
        let show = try run(["traits", "show", "evil", "--json"])
        XCTAssertEqual(show.status, 0, show.output)
        var trait = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(show.output.utf8)) as? [String: Any])
        trait["name"] = "../escaped"
        let file = d.appendingPathComponent("bad.json")
        try JSONSerialization.data(withJSONObject: trait).write(to: file)
        let out = d.appendingPathComponent("out")
        let r = try run(["extract", "--model", try stories, "--trait", "\(file.path),refusal", "--judge", "none", "--questions", "1",
                         "--eval-count", "1", "--max-tokens", "4", "--out", out.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains(#"name "../escaped" must not hold /"#), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d.appendingPathComponent("escaped").path), "wrote outside --out")
        for name in ["a/b", "", ".."] {
            let n = try run(["traits", "new", name, "--out", d.appendingPathComponent("new.json").path])
            XCTAssertNotEqual(n.status, 0, name)
            XCTAssertTrue(n.output.contains("<name> \"\(name)\""), n.output)
            XCTAssertFalse(n.output.contains("Domain="), n.output)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: d.appendingPathComponent("new.json").path))
    }

    func testServeRunsInReadOnlyFolder() throws {
        let ro = try readOnlyDir()
        for runs in [ro.path, ro.appendingPathComponent("sub").path] {
            let r = try run(["serve", "--port", "18766", "--runs", runs, "--no-examples"], timeout: 30)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.output.contains("--runs"), r.output)
            XCTAssertTrue(r.output.contains("Read-only file system") || r.output.contains("Permission denied"), r.output)
        }
    }

    /// A vector file that does not read stops `serve` before the store is made or filled with example runs.
    func testServeWithBadVectorsLeavesNoStore() throws {
        let d = try tempDir()
        let bad = d.appendingPathComponent("evil.safetensors")
        try Data("not a safetensors file".utf8).write(to: bad)
        let runs = d.appendingPathComponent("runs")
        let r = try run(["serve", "--port", "18767", "--runs", runs.path, "--model", try stories, "--vectors", bad.path], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains(bad.path) || r.output.contains("evil.safetensors"), "the error names the file: \(r.output)")
        XCTAssertFalse(r.output.contains("example runs"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs.appendingPathComponent("runs.sqlite").path), "a store was made")
    }

    /// A second `serve` on a port the first one holds stops with one line naming --port before it makes its run
    /// store (it printed the dashboard's address, then NIO's "bind(descriptor:ptr:bytes:): Address already in use)
    /// (errno: 98)"), and the first server keeps serving.
    func testServeOnATakenPortSaysSoAndMakesNoStore() async throws {
        let d = try tempDir(), port = 19000 + Int(getpid() % 1000)
        let first = ServeProcess(binary: try binary, port: port, runs: d.appendingPathComponent("first"), arguments: [])
        try await first.start()
        defer { first.stop() }
        let runs = d.appendingPathComponent("second")
        let r = try run(["serve", "--port", "\(port)", "--runs", runs.path], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--port \(port): 127.0.0.1:\(port) is already in use"), r.output)
        XCTAssertFalse(r.output.contains("dashboard: http"), "announced a server that never listened: \(r.output)")
        XCTAssertFalse(r.output.contains("errno"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs.path), "--runs was created")
        let (_, response) = try await URLSession.shared.data(from: first.base.appendingPathComponent("v1/models"))
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200, "the first server still answers")
    }

    func testMonitorOutOnAFullDiskSaysSo() throws {
        let full = try fullDir()
        let out = full.appendingPathComponent("run.json")
        let r = try run(["monitor", "--model", stories, "--vectors", vectors, "--prompt", "Once upon a time",
                         "--max-tokens", "64", "--out", out.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--out \(out.path): cannot write"), r.output)
        XCTAssertTrue(r.output.contains("No space left on device"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no partial file")
        let left = try FileManager.default.contentsOfDirectory(atPath: full.path).filter { $0 != "filler" }
        XCTAssertEqual(left, [], "temporary files left behind: \(left)")
    }
}

