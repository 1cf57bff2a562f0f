import Foundation
import PersonaHash

/// Hex SHA-256 of a string's UTF-8 bytes (judge cache keys); the hashing itself is PersonaHash's.
public enum SHA256 {
    public static func hex(_ s: String) -> String {
        var h = SHA256Hasher()
        h.update(Data(s.utf8))
        return h.hexDigest()
    }
}
