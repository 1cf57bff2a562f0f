import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import PersonaTestSupport

/// Paths for tests that run the binary: the committed model fixtures and the shared folder.
enum TestPaths {
    static var fixtures: URL { Repository.modelFixtures }
    static var repoRoot: URL { Repository.root }
    static var shared: URL { get throws { try Repository.shared } }
    static var stories260K: URL { get throws { try Repository.stories260K } }
}

func sharedFolder() throws -> URL { try Repository.shared }
let llama2Folder = Repository.modelFixtures.appendingPathComponent("llama2")
func makeTempDir(_ name: String) throws -> URL { try Repository.temporaryDirectory("cli-\(name)") }

/// A test that runs the built binary, with a temporary folder of its own (`dir`, removed afterwards).
class BinaryTestCase: XCTestCase {
    /// Names the temporary folder.
    class var folderPrefix: String { "cli" }
    var dir: URL!
    override func setUpWithError() throws { dir = try Repository.temporaryDirectory(Self.folderPrefix) }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func persona(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Subprocess.run(try Subprocess.personaBinary(besides: Self.self), args)
    }
}

/// `persona serve` for the length of a test, on loopback with its own run store and no example runs:
/// `start` returns once `/v1/models` answers (or fails the test), `stop` ends it.
final class ServeProcess {
    let process = Process()
    let base: URL

    /// `port` should differ between test classes that may run at once; `arguments` follow `serve --port --runs`.
    init(binary: URL, port: Int, runs: URL, arguments: [String]) {
        base = URL(string: "http://127.0.0.1:\(port)")!
        process.executableURL = binary
        process.arguments = ["serve", "--port", "\(port)", "--runs", runs.path, "--no-examples"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
    }

    func start(file: StaticString = #filePath, line: UInt = #line) async throws {
        try process.run()
        for _ in 0..<150 {
            if let (_, r) = try? await URLSession.shared.data(from: base.appendingPathComponent("v1/models")),
               (r as? HTTPURLResponse)?.statusCode == 200 { return }
            guard process.isRunning else { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTFail("persona serve did not start at \(base)", file: file, line: line)
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
