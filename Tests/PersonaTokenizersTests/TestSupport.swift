import Foundation
import XCTest
@testable import PersonaTestSupport

func sharedReferenceURL(_ relative: String) -> URL? { Repository.sharedFile(relative) }
func requireShared(_ relative: String) throws -> URL { try Repository.requireShared(relative) }

func fixtureURL(_ name: String) throws -> URL { try Repository.fixture(name, in: Bundle.module) }
