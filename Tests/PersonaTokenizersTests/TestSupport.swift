import Foundation
import XCTest
@testable import PersonaTestSupport

func sharedReferenceURL(_ relative: String) -> URL? { Repository.sharedFile(relative) }
func requireShared(_ relative: String) throws -> URL { try Repository.requireShared(relative) }

func fixtureURL(_ name: String) throws -> URL {
    guard let base = Bundle.module.resourceURL else { throw XCTSkip("no resource bundle") }
    let u = base.appendingPathComponent("Fixtures").appendingPathComponent(name)
    guard FileManager.default.fileExists(atPath: u.path) else { throw XCTSkip("fixture \(name) missing") }
    return u
}
