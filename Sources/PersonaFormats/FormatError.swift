/// A malformed, truncated or unsupported model file. `message` is one line naming the file and the field or tensor.
public struct FormatError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }

    public init(_ message: String) { self.message = FormatError.oneLine(message) }

    /// "<file>: <what>" — the common shape of every message.
    init(file: String, _ what: String) { self.message = FormatError.oneLine("\(file): \(what)") }

    /// Names and values quoted from hostile files may contain newlines; messages stay on one line.
    private static func oneLine(_ s: String) -> String {
        s.contains(where: \.isNewline) ? String(s.map { $0.isNewline ? " " : $0 }) : s
    }
}
