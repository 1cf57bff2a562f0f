import Foundation
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
