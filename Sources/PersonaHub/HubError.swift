import Foundation

/// Errors from resolving or downloading Hub models; `description` is a full sentence for the user.
public struct HubError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        case invalidID, notCached, incompleteSnapshot, offline, unauthorized, notFound, http, checksum, network, io, selection
    }
    public let kind: Kind
    public let description: String
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}
