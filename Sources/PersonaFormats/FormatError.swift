/// A malformed, truncated or unsupported model file. `message` is one line naming the file and the field or tensor.
public struct FormatError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }

    public init(_ message: String) { self.message = message }

    /// "<file>: <what>" — the common shape of every message.
    init(file: String, _ what: String) { self.message = "\(file): \(what)" }
}
