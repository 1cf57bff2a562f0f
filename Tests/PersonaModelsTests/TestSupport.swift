import Foundation
import PersonaFormats
import XCTest
@testable import PersonaTestSupport

/// Paths to committed fixtures and to the shared reference folder beside the repository.
enum TestPaths {
    static var fixtures: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }

    static var repoRoot: URL { Repository.root }
    static var shared: URL { get throws { try Repository.shared } }

    static var stories260K: URL { get throws { try shared.appendingPathComponent("models/stories260K/stories260K.gguf") } }
}

