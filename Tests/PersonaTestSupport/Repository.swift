import Foundation
import XCTest

// Where tests find the repository, its committed fixtures and the shared reference folder beside it.
// Test targets use this module with `@testable import PersonaTestSupport` (it is never part of a product).

enum Repository {
    /// The repository root (this file is Tests/PersonaTestSupport/Repository.swift), symlinks resolved.
    static let root: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The tiny random models and transformers references committed under Tests/PersonaModelsTests/Fixtures.
    static let modelFixtures = root.appendingPathComponent("Tests/PersonaModelsTests/Fixtures")

    /// The shared folder: $PERSONA_SHARED, else `shared` beside the repository; nil when absent.
    static var sharedIfPresent: URL? {
        let url: URL
        if let s = ProcessInfo.processInfo.environment["PERSONA_SHARED"], !s.isEmpty { url = URL(fileURLWithPath: s) }
        else { url = root.deletingLastPathComponent().appendingPathComponent("shared") }
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// The shared folder; a test that needs it is skipped (with the reason) when it is absent.
    static var shared: URL {
        get throws {
            guard let url = sharedIfPresent else {
                throw XCTSkip("shared folder not present beside the repository (set PERSONA_SHARED to the shared folder)")
            }
            return url
        }
    }

    /// `relative` inside the shared folder, or nil when it is absent.
    static func sharedFile(_ relative: String) -> URL? {
        guard let u = sharedIfPresent?.appendingPathComponent(relative),
              FileManager.default.fileExists(atPath: u.path) else { return nil }
        return u
    }

    /// `relative` inside the shared folder; skips the calling test when it is absent.
    static func requireShared(_ relative: String) throws -> URL {
        guard let u = sharedFile(relative) else {
            throw XCTSkip("reference file ../shared/\(relative) not present (set PERSONA_SHARED to the shared folder)")
        }
        return u
    }

    /// Fixtures/`name` among a test target's resources (pass its `Bundle.module`); skips the calling test when the
    /// bundle or the file is missing.
    static func fixture(_ name: String, in bundle: Bundle) throws -> URL {
        guard let base = bundle.resourceURL else { throw XCTSkip("no resource bundle") }
        let u = base.appendingPathComponent("Fixtures").appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: u.path) else { throw XCTSkip("fixture \(name) missing") }
        return u
    }

    static var stories260K: URL { get throws { try requireShared("models/stories260K/stories260K.gguf") } }
    static var smolLM2: URL { get throws { try requireShared("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf") } }

    /// A fresh temporary directory named `persona-<prefix>-<uuid>`; the caller removes it.
    static func temporaryDirectory(_ prefix: String) throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("persona-\(prefix)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}
