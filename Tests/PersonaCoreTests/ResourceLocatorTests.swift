import Foundation
import XCTest
@testable import PersonaResources
@testable import PersonaTestSupport

/// The archive appended to a release binary: written by GNU tar (an independent ustar writer), read back by ours.
final class ResourceLocatorTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Repository.temporaryDirectory("resources") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func tar(_ args: [String]) throws -> Data {
        let out = dir.appendingPathComponent("out-\(UUID().uuidString).tar")
        let r = try Subprocess.run(URL(fileURLWithPath: "/usr/bin/env"), ["tar", "--format=ustar", "-C", dir.path, "-cf", out.path] + args)
        guard r.status == 0 else { throw XCTSkip("GNU tar unavailable: \(r.stderr)") }
        return try Data(contentsOf: out)
    }

    /// `executable` bytes + archive + length + magic, as Scripts/build_release.sh writes it.
    func appended(_ archive: Data, to executable: Data) -> URL {
        var d = executable
        d.append(archive)
        var n = UInt64(archive.count).littleEndian
        d.append(Data(bytes: &n, count: 8))
        d.append(Data("PERSONA\0".utf8))
        let u = dir.appendingPathComponent("fake-exe-\(UUID().uuidString)")
        try! d.write(to: u)
        return u
    }

    func testRoundTripThroughAppendedArchive() throws {
        let fm = FileManager.default
        let long = String(repeating: "deep-folder-name-", count: 5)   // > 100 characters with its parent: ustar prefix field
        let files = ["B.resources/traits/evil.json": Data("{\"x\": 1}".utf8),
                     "B.resources/Dashboard/index.html": Data("<html>é</html>".utf8),
                     "B.resources/\(long)/\(long)/x.bin": Data((0 ..< 3000).map { UInt8($0 % 251) })]
        for (p, data) in files {
            let u = dir.appendingPathComponent("src/" + p)
            try fm.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: u)
        }
        let archive = try tar(["-C", dir.appendingPathComponent("src").path, "B.resources"])
        let exe = appended(archive, to: Data(repeating: 0x7f, count: 4097))

        let payload = try XCTUnwrap(EmbeddedArchive.payload(of: exe))
        XCTAssertEqual(payload, archive)
        let out = dir.appendingPathComponent("unpacked")
        try Ustar.extract(payload, into: out)
        for (p, data) in files {
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(p)), data, p)
        }
    }

    func testExecutableWithoutArchiveHasNoPayload() throws {
        let u = dir.appendingPathComponent("plain")
        try Data(repeating: 1, count: 100).write(to: u)
        XCTAssertNil(try EmbeddedArchive.payload(of: u))
        // A trailer whose length points before the file start is ignored, not trusted.
        var bad = Data(repeating: 1, count: 10)
        var n = UInt64(1 << 40).littleEndian
        bad.append(Data(bytes: &n, count: 8)); bad.append(Data("PERSONA\0".utf8))
        try bad.write(to: u)
        XCTAssertNil(try EmbeddedArchive.payload(of: u))
    }

    func testPathsLeavingTheFolderAreRefused() throws {
        try Data("x".utf8).write(to: dir.appendingPathComponent("victim"))
        let archive = try tar(["--transform", "s,^,../,", "victim"])
        let out = dir.appendingPathComponent("unpacked")
        XCTAssertThrowsError(try Ustar.extract(archive, into: out)) { XCTAssertTrue("\($0)".contains("unsafe path"), "\($0)") }
        // "/" with a combining mark after it is one Swift Character, still a separator on disk
        let marked = try tar(["--transform", "s,^,../\u{301},", "victim"])
        XCTAssertThrowsError(try Ustar.extract(marked, into: out)) { XCTAssertTrue("\($0)".contains("unsafe path"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("\u{301}victim").path))
    }

    func testShippedTraitsAreFound() throws {
        // A development build finds the bundle beside the test binary or the source tree: never nil.
        let traits = try XCTUnwrap(ResourceLocator.folder(bundle: "PersonaScope_PersonaCore", subpath: "traits",
                                                          source: Repository.root.appendingPathComponent("Sources/PersonaCore/Resources/traits")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: traits.appendingPathComponent("evil.json").path))
    }
}
