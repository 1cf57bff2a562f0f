import Foundation
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
