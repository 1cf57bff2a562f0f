import Foundation

// Seeded mutation fuzzing shared by the Fuzz*Tests files.
// Deterministic: the same seed gives the same inputs, so a failure report names the seed and iteration to replay.

/// SplitMix64: small, fast, deterministic.
struct FuzzRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    mutating func chance(_ oneIn: Int) -> Bool { below(oneIn) == 0 }
    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
}

enum FuzzMutator {
    /// Iterations for a target: `defaultCount` in CI, or PERSONA_FUZZ_ITERATIONS for a longer run by hand.
    static func iterations(_ defaultCount: Int) -> Int {
        ProcessInfo.processInfo.environment["PERSONA_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? defaultCount
    }

    /// Seed: fixed unless PERSONA_FUZZ_SEED is set (a long run by hand can explore other inputs).
    static func seed(_ defaultSeed: UInt64) -> UInt64 {
        ProcessInfo.processInfo.environment["PERSONA_FUZZ_SEED"].flatMap { UInt64($0) } ?? defaultSeed
    }

    /// Integers that tend to sit on boundaries of lengths, counts, offsets and ids.
    static let interestingIntegers: [UInt64] = [
        0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
        0x1_0000_0000, 1 << 40, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, UInt64.max, UInt64.max - 1,
    ]

    /// Text fragments for JSON and Jinja sources.
    static let textTokens: [String] = [
        "{", "}", "[", "]", "\"", ",", ":", "null", "true", "false", "-1", "0", "1e999", "-1e999", "1e-999", "NaN",
        "99999999999999999999", "4294967296", "9223372036854775807", "-9223372036854775808", "2147483648", "0.5",
        "\\u0000", "\\ud800", "\\udfff", "\\", "\u{0}", "\u{FFFD}", "é", "🚀", "\u{202E}", "\n", " ",
        "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "for x in messages", "endfor", "if", "endif",
        "else", "elif", "set", "macro", "endmacro", "call", "range(999999999)", "loop.index", "loop.cycle(",
        "namespace(", "raise_exception(", "|tojson", "|length", "|join", "|safe", "~", "*", "**", "//", "%", "(", ")",
        "messages[0]", "[-1]", "[::-1]", ".content", "'", "is defined", "not", "and", "or", "in", "recursive",
    ]

    /// One random mutation of raw bytes. `region` limits where in-place edits land (e.g. a header); insertions
    /// and truncations may land anywhere. `others` are corpus members for splicing.
    static func mutateBytes(_ b: inout [UInt8], rng: inout FuzzRNG, region: Int? = nil, others: [[UInt8]] = []) {
        let limit = max(1, min(region ?? b.count, b.count))
        if b.isEmpty { b = Array(rng.pick(textTokens).utf8); return }
        let pos = rng.below(limit)
        switch rng.below(10) {
        case 0: b[pos] ^= UInt8(1 << rng.below(8))
        case 1: b[pos] = UInt8(truncatingIfNeeded: rng.next())
        case 2, 3:  // an interesting integer over a length/count/offset-sized field, little-endian
            let v = rng.chance(3) ? rng.next() : rng.pick(interestingIntegers)
            let width = rng.pick([1, 2, 4, 8])
            for k in 0 ..< width where pos + k < b.count { b[pos + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        case 4: b.removeSubrange(pos...)
        case 5:  // delete a range
            let n = 1 + rng.below(min(64, b.count - pos))
            b.removeSubrange(pos ..< pos + n)
        case 6:  // duplicate a range (grows nesting, repeats records)
            let n = 1 + rng.below(min(256, b.count - pos))
            b.insert(contentsOf: b[pos ..< pos + n], at: pos + n)
        case 7:  // insert a token
            b.insert(contentsOf: Array(rng.pick(textTokens).utf8), at: pos)
        case 8 where !others.isEmpty:  // splice: our head, another member's tail
            let o = rng.pick(others)
            if !o.isEmpty { b = Array(b[..<pos]) + Array(o[rng.below(o.count)...]) }
        default:
            for _ in 0 ..< 1 + rng.below(8) { b[rng.below(limit)] = UInt8(truncatingIfNeeded: rng.next()) }
        }
    }

    /// Several stacked byte mutations (1...maxStack).
    static func mutated(_ input: [UInt8], rng: inout FuzzRNG, region: Int? = nil, others: [[UInt8]] = [], maxStack: Int = 4) -> [UInt8] {
        var b = input
        for _ in 0 ..< 1 + rng.below(maxStack) { mutateBytes(&b, rng: &rng, region: region, others: others) }
        return b
    }

    // MARK: structured JSON mutations

    /// Values that break assumptions: wrong types, extreme numbers, huge or empty containers, odd strings.
    static func hostileJSONValue(_ rng: inout FuzzRNG) -> Any {
        switch rng.below(16) {
        case 0: return NSNull()
        case 1: return -1
        case 2: return 0
        case 3: return Int.max
        case 4: return Int.min
        case 5: return 1e308
        case 6: return -0.0
        case 7: return 4_294_967_296
        case 8: return ""
        case 9: return String(repeating: "a", count: 1 + rng.below(5000))
        case 10: return [Any]()
        case 11: return [String: Any]()
        case 12: return true
        case 13: return Array(repeating: rng.below(100), count: rng.below(2000))
        case 14: return "\u{0}\u{FFFD}é🚀\u{202E}<|endoftext|>▁Ġ<0x41>"
        default: return 1 + rng.below(100_000)
        }
    }

    /// Replaces, deletes, duplicates or retypes one random node of a parsed JSON tree.
    static func mutateJSON(_ root: Any, rng: inout FuzzRNG) -> Any {
        // Walk down a random path, then act on the node reached.
        func go(_ v: Any, depth: Int) -> Any {
            let stop = depth > 0 && rng.chance(3)
            if var d = v as? [String: Any], !d.isEmpty, !stop {
                let keys = d.keys.sorted()
                let k = rng.pick(keys)
                switch rng.below(8) {
                case 0: d.removeValue(forKey: k)
                case 1: d[k] = hostileJSONValue(&rng)
                case 2: d[k + "_x"] = d[k]
                default: d[k] = go(d[k]!, depth: depth + 1)
                }
                return d
            }
            if var a = v as? [Any], !a.isEmpty, !stop {
                let i = rng.below(a.count)
                switch rng.below(8) {
                case 0: a.remove(at: i)
                case 1: a[i] = hostileJSONValue(&rng)
                case 2: a.append(a[i])
                case 3: a.swapAt(i, rng.below(a.count))
                case 4: a.removeSubrange(i...)
                default: a[i] = go(a[i], depth: depth + 1)
                }
                return a
            }
            if let n = v as? NSNumber, !(v is Bool), rng.chance(2) {
                let d = n.doubleValue
                let m = rng.pick([d * 2, -d, d + 1, d - 1, d * 1e6, 0, -1, Double(Int32.max) + 1, d.squareRoot()] as [Double])
                return m.isFinite ? m : 1e308   // JSON has no NaN/Inf; raw byte mutations insert those spellings

            }
            if let s = v as? String, rng.chance(2) {
                var b = Array(s.utf8)
                mutateBytes(&b, rng: &rng)
                return String(decoding: b, as: UTF8.self)
            }
            return hostileJSONValue(&rng)
        }
        return go(root, depth: 0)
    }

    /// A mutated JSON document: usually structured (parse, mutate nodes, serialise), sometimes raw bytes.
    static func mutatedJSON(_ input: [UInt8], rng: inout FuzzRNG, others: [[UInt8]] = []) -> [UInt8] {
        if rng.chance(3) { return mutated(input, rng: &rng, others: others) }
        guard let tree = try? JSONSerialization.jsonObject(with: Data(input), options: [.fragmentsAllowed]) else {
            return mutated(input, rng: &rng, others: others)
        }
        var t: Any = tree
        for _ in 0 ..< 1 + rng.below(3) { t = mutateJSON(t, rng: &rng) }
        guard JSONSerialization.isValidJSONObject(t) || !(t is [String: Any] || t is [Any]),
              let data = try? JSONSerialization.data(withJSONObject: t, options: [.fragmentsAllowed, .sortedKeys]) else {
            return mutated(input, rng: &rng, others: others)
        }
        return [UInt8](data)
    }
}

/// Tally of a fuzz run: how many inputs loaded, how many were refused, the slowest iteration, distinct messages.
struct FuzzTally: CustomStringConvertible {
    var ok = 0
    var refused = 0
    var slowest: TimeInterval = 0
    var slowestIteration = -1
    var messages = Set<String>()
    var description: String { "ok \(ok), refused \(refused), slowest iteration #\(slowestIteration) \(String(format: "%.3f", slowest)) s, \(messages.count) distinct messages" }

    /// Runs one iteration: counts it as ok or refused (keeping the refusal's message, cut to `messageLength`),
    /// and keeps the slowest time. Returns a failure text when the refusal is not acceptable (see `problem`).
    mutating func run(iteration i: Int, expectedTypes: [Error.Type], messageLength: Int? = nil, _ body: () throws -> Void) -> String? {
        let t0 = Date()
        defer {
            let dt = Date().timeIntervalSince(t0)
            if dt > slowest { (slowest, slowestIteration) = (dt, i) }
        }
        do {
            try body()
            ok += 1
            return nil
        } catch {
            refused += 1
            messages.insert(messageLength.map { "\(error)".prefix($0).description } ?? "\(error)")
            return Self.problem(with: error, expectedTypes: expectedTypes)
        }
    }

    /// A refusal must be a described error of an expected type: a message that is not just Foundation's
    /// generic "The operation could not be completed". Returns a failure text, or nil when acceptable.
    static func problem(with error: Error, expectedTypes: [Error.Type]) -> String? {
        let text = "\(error)"
        if !expectedTypes.contains(where: { ObjectIdentifier(type(of: error)) == ObjectIdentifier($0) }) {
            return "unexpected error type \(type(of: error)): \(text)"
        }
        // Foundation's generic text is fine inside our message (after the file and field), not as the whole of it.
        if text.trimmingCharacters(in: .whitespacesAndNewlines).count < 8 || text.hasPrefix("The operation could")
            || text.hasPrefix("The operation couldn") {
            return "error without a useful message: \(text)"
        }
        return nil
    }
}
