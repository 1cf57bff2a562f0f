import Foundation
import XCTest
@testable import PersonaTestSupport
@testable import PersonaFormats

/// Paths used by the tests: the shared reference data (../shared from the repo root, or $PERSONA_SHARED)
/// and this target's Fixtures folder (found next to this file, so no bundle lookup is needed).
enum TestPaths {
    static let testsDir = Repository.root.appendingPathComponent("Tests/PersonaFormatsTests")
    static let repoRoot = Repository.root
    static var shared: URL { get throws { try Repository.shared } }
    static let fixtures = testsDir.appendingPathComponent("Fixtures")
    static var stories260K: URL { get throws { try shared.appendingPathComponent("models/stories260K/stories260K.gguf") } }
    static var vocabDir: URL { get throws { try shared.appendingPathComponent("reference/llama.cpp-vocab") } }

    /// The JSON written by Scripts/make_format_fixtures.py.
    static func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("formats_expected.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// A fresh temporary directory, removed by the caller's teardown.
    static func tempDir() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("persona-formats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

func floats(_ t: TensorInfo) -> [Float] {
    precondition(t.dtype == .f32)
    return (0 ..< t.elementCount).map { t.data.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
}

func hexString(_ p: UnsafeRawBufferPointer) -> String {
    p.map { String(format: "%02x", $0) }.joined()
}

func dataFromFloats(_ v: [Float]) -> Data { v.withUnsafeBytes { Data($0) } }

/// Asserts `body` throws a FormatError whose message mentions each of `mentions`.
func assertFormatError<T>(_ body: @autoclosure () throws -> T, mentions: [String] = [], file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a FormatError", file: file, line: line)
    } catch let e as FormatError {
        for m in mentions where !e.message.contains(m) {
            XCTFail("error '\(e.message)' does not mention '\(m)'", file: file, line: line)
        }
        XCTAssertFalse(e.message.contains("\n"), "error should be one line: \(e.message)", file: file, line: line)
    } catch {
        XCTFail("expected a FormatError, got \(error)", file: file, line: line)
    }
}
