import Foundation
import XCTest
@testable import PersonaTestSupport

let repoRoot = Repository.root

/// The tiny llama2 model folder served by the fake Hub.
let llama2Folder = Repository.modelFixtures.appendingPathComponent("llama2")

func makeTempDir(_ name: String = "hub") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("personahub-\(name)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Builds `models--org--name` by hand the way huggingface_hub lays it out: blobs named by etag,
/// `snapshots/<commit>/<file>` relative symlinks to `../../blobs/<etag>`, `refs/<name>` holding the commit.
func writeCachedRepo(root: URL, repo: String, commit: String, files: [String: Data], refs: [String]) throws {
    let fm = FileManager.default
    let folder = root.appendingPathComponent("models--" + repo.replacingOccurrences(of: "/", with: "--"))
    let blobs = folder.appendingPathComponent("blobs")
    let snap = folder.appendingPathComponent("snapshots/\(commit)")
    try fm.createDirectory(at: blobs, withIntermediateDirectories: true)
    try fm.createDirectory(at: snap, withIntermediateDirectories: true)
    for (name, data) in files {
        let tmp = blobs.appendingPathComponent("tmp-\(UUID().uuidString)")
        try data.write(to: tmp)
        let etag = name.hasSuffix(".safetensors") || name.hasSuffix(".gguf") ? try FakeHub.sha256sum(tmp) : try FakeHub.gitHashObject(tmp)
        let blob = blobs.appendingPathComponent(etag)
        if fm.fileExists(atPath: blob.path) { try fm.removeItem(at: tmp) } else { try fm.moveItem(at: tmp, to: blob) }
        let link = snap.appendingPathComponent(name)
        try fm.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
        let depth = name.split(separator: "/").count - 1
        try fm.createSymbolicLink(atPath: link.path, withDestinationPath: String(repeating: "../", count: 2 + depth) + "blobs/" + etag)
    }
    for r in refs {
        let ref = folder.appendingPathComponent("refs/\(r)")
        try fm.createDirectory(at: ref.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(commit.utf8).write(to: ref)
    }
}

func llama2Files(_ names: [String]) throws -> [String: Data] {
    var out: [String: Data] = [:]
    for n in names { out[n] = try Data(contentsOf: llama2Folder.appendingPathComponent(n)) }
    return out
}

func XCTAssertThrowsHubError<T>(_ expr: @autoclosure () throws -> T, _ check: (String) -> Void, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expr(), file: file, line: line) { check("\($0)") }
}
