import Foundation
import PersonaRuns

/// A request field that is wrong in a way a decoder cannot say by itself: a field that one of PersonaScope's own
/// objects does not have (`/api/generate`, a steering entry, the OpenAI routes' `persona` object), or a value
/// required in context. Those objects refuse unknown fields, since a misspelt one (`max_new_tokens`, `coeff`)
/// would otherwise be dropped and the request run without it. The OpenAI request bodies themselves still ignore
/// fields they do not know (`user`, `presence_penalty`, ...), as OpenAI-compatible servers do.
struct FieldError: Error, CustomStringConvertible {
    /// Dotted path of the field, `steer[0].coef`.
    var path: String
    var message: String
    var description: String { "\(path): \(message)" }
}

/// A coding path as API errors name it: `persona.steer[1].coef`.
func dottedPath(_ p: [CodingKey]) -> String {
    let s = p.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    return s.hasPrefix(".") ? String(s.dropFirst()) : s
}

extension Decoder {
    /// The dotted path of `field` in this object.
    func fieldPath(_ field: String) -> String { dottedPath(codingPath + [AnyKey(field)]) }

    /// Throws `FieldError` for a key of this object that is not one of `Keys`' cases (the first in sorted order,
    /// so the message is stable).
    func rejectUnknownFields<Keys: CodingKey & CaseIterable>(_: Keys.Type) throws {
        let known = Keys.allCases.map(\.stringValue)
        let c = try container(keyedBy: AnyKey.self)
        guard let bad = c.allKeys.map(\.stringValue).filter({ !known.contains($0) }).sorted().first else { return }
        throw FieldError(path: fieldPath(bad), message: "unknown field (known: \(known.joined(separator: ", ")))")
    }
}
