import Foundation
import XCTest

// Running the built `persona` binary (and other programs) from tests.
enum Subprocess {
    /// The `persona` binary: $PERSONA_BINARY, else the one `swift build` left beside the test bundle of `testClass`.
    /// Skips the calling test when there is none.
    static func personaBinary(besides testClass: AnyClass) throws -> URL {
        if let p = ProcessInfo.processInfo.environment["PERSONA_BINARY"] {
            guard FileManager.default.isExecutableFile(atPath: p) else { throw XCTSkip("PERSONA_BINARY=\(p) is not executable") }
            return URL(fileURLWithPath: p)
        }
        var dir = Bundle(for: testClass).bundleURL
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("persona")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw XCTSkip("persona binary not built (run `swift build` first, or set PERSONA_BINARY)")
    }

    /// This process's environment without the variables starting with `droppingPrefix`, with `extra` on top.
    static func environment(merging extra: [String: String], droppingPrefix prefix: String? = nil) -> [String: String] {
        var e = ProcessInfo.processInfo.environment
        if let prefix { for k in e.keys where k.hasPrefix(prefix) { e[k] = nil } }
        return e.merging(extra) { $1 }
    }

    /// Runs `executable` to completion with `environment` (nil: this process's) and returns its exit status,
    /// standard output and standard error.
    static func run(_ executable: URL, _ args: [String], environment: [String: String]? = nil) throws
        -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
