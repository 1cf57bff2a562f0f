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

extension KeyedDecodingContainer {
    /// An integer field, or nil when absent. Foundation's JSONDecoder reports a number that is not an integer of
    /// `T` (1.5, -5 for an unsigned field, 1e20) as "The given data was not valid JSON" with an empty coding path,
    /// so the client was told its valid JSON was malformed and not which field was wrong; this names both.
    func integer<T: FixedWidthInteger & Decodable>(_: T.Type, forKey key: Key) throws -> T? {
        // Linux's decoder throws an internal error here (numberIsNotRepresentableInSwift), which it turns into that
        // pathless dataCorrupted on the way out; so everything but a type mismatch ("5") is taken as a bad number
        do { return try decodeIfPresent(T.self, forKey: key) } catch let e as DecodingError {
            if case .typeMismatch = e { throw e }
            throw numberError(T.self, key)
        } catch { throw numberError(T.self, key) }
    }

    private func numberError<T: FixedWidthInteger>(_: T.Type, _ key: Key) -> FieldError {
        let path = dottedPath(codingPath + [key])
        guard let d = try? decode(Double.self, forKey: key) else { return FieldError(path: path, message: "must be an integer") }
        let text = d == d.rounded() && abs(d) < 1e21 ? String(format: "%.0f", d) : "\(d)"
        if d != d.rounded() { return FieldError(path: path, message: "must be an integer, not \(text)") }
        return FieldError(path: path, message: "\(text) is out of range (\(T.min) to \(T.max))")
    }
}

extension KeyedDecodingContainer {
    /// A sampling seed: any 64-bit integer, signed or not; a negative one is taken as its two's complement, so
    /// `/api/generate` and the OpenAI routes give the same sample for the same seed.
    func seed(forKey key: Key) throws -> UInt64? {
        if let s = try? decodeIfPresent(Int64.self, forKey: key) { return UInt64(bitPattern: s) }
        do { return try integer(UInt64.self, forKey: key) } catch let e as FieldError where e.message.contains("out of range") {
            throw FieldError(path: e.path, message: "must be a 64-bit integer (\(Int64.min) to \(UInt64.max))")
        }
    }
}
