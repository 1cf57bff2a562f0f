import Foundation

/// A Hub model reference: `org/name`, optionally one file in it (`org/name/file.gguf`) and a
/// revision after `@` (branch, tag or commit hash; default `main`), e.g. `org/name/q8.gguf@v1.0`.
public struct HubID: Sendable, Equatable, CustomStringConvertible {
    public var repo: String
    /// A file inside the repository (e.g. one GGUF of several), or nil for the whole snapshot.
    public var file: String?
    public var revision: String

    public init(repo: String, file: String? = nil, revision: String = "main") {
        self.repo = repo
        self.file = file
        self.revision = revision
    }

    /// Parses `org/name[/file][@revision]`; nil when `s` does not have that shape.
    public init?(parsing s: String) {
        var body = Substring(s)
        var rev = "main"
        if let at = s.firstIndex(of: "@") {
            body = s[..<at]
            rev = String(s[s.index(after: at)...])
            if rev.isEmpty { return nil }
        }
        let parts = HubID.pathComponents(String(body))
        guard parts.count >= 2, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
              HubID.validName(parts[0]), HubID.validName(parts[1]) else { return nil }
        repo = parts[0] + "/" + parts[1]
        file = parts.count > 2 ? parts[2...].joined(separator: "/") : nil
        revision = rev
    }

    /// `s` split at every "/" scalar (empty parts kept). Not `String.split`: a "/" followed by a combining mark is
    /// one Character there, so "a/../\u{301}x" would not show its ".." although the file system sees it.
    static func pathComponents(_ s: String) -> [String] {
        s.unicodeScalars.split(separator: "/", omittingEmptySubsequences: false).map { String($0) }
    }

    /// Hub names: letters, digits, `-`, `_`, `.`; not starting with `.` or `-`.
    static func validName(_ s: String) -> Bool {
        guard let f = s.first, f != ".", f != "-" else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    /// The cache folder name huggingface_hub uses: `models--org--name`.
    public var cacheFolderName: String { "models--" + repo.replacingOccurrences(of: "/", with: "--") }

    public var description: String {
        repo + (file.map { "/" + $0 } ?? "") + (revision == "main" ? "" : "@" + revision)
    }

    /// True for a full 40-character commit hash.
    public static func isCommitHash(_ s: String) -> Bool {
        s.count == 40 && s.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }
}
