import Foundation
import XCTest
import PersonaGeneration
import PersonaModels
@testable import PersonaCore

final class JudgeLocalTests: XCTestCase {
    /// The local judge's number distribution equals a softmax of HiddenStateTrace's logits computed here,
    /// over the tokens whose SentencePiece piece (not the decoder) reads as 0...100.
    func testNumberDistributionMatchesTraceLogits() throws {
        let loaded = try ModelLoader.load(path: sharedFolder().appendingPathComponent("models/stories260K/stories260K.gguf").path)
        let judge = LocalJudge(loaded)
        let tok = loaded.tokenizer.tokenizer
        var expectedIds: [Int: Int] = [:]
        for id in 0..<tok.vocabSize where !tok.isSpecial(id) {
            guard let piece = tok.tokenString(id) else { continue }
            var text = piece.replacingOccurrences(of: "\u{2581}", with: " ").trimmingCharacters(in: .whitespaces)
            // Byte-fallback pieces <0x30>...<0x39> are the digits as single bytes.
            if text.count == 6, text.hasPrefix("<0x"), text.hasSuffix(">"), let b = UInt8(text.dropFirst(3).prefix(2), radix: 16) {
                text = String(decoding: [b], as: UTF8.self)
            }
            if !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(text), v <= 100 { expectedIds[id] = v }
        }
        XCTAssertGreaterThanOrEqual(expectedIds.count, 10, "digits 0-9 at least")
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: judge.numberTokens.map { ($0.id, $0.value) }), expectedIds)

        let prompt = "Lily had 3 apples and 4 pears. How many fruits did she have? The answer is"
        let ids = tok.encode(prompt, addSpecialTokens: true)   // no chat template: raw text with BOS
        let logits = try HiddenStateTrace.run(model: loaded.model, tokens: ids).logits
        let V = loaded.config.vocabSize
        let last = logits[(ids.count - 1) * V ..< ids.count * V].map(Double.init)
        let mx = last.max()!
        let z = last.reduce(0) { $0 + exp($1 - mx) }
        let got = try judge.numberProbabilities(prompt: prompt)
        var mass = 0.0, weighted = 0.0
        for g in got {
            let p = exp(last[g.id] - mx) / z
            XCTAssertEqual(g.p, p, accuracy: 1e-6)
            mass += p; weighted += Double(g.value) * p
        }
        XCTAssertGreaterThan(mass, 0, "digits should get some probability")
        XCTAssertTrue(judge.spellsDigits, "stories260K has no token for 10...100")
    }

    /// SmolLM2 spells numbers digit by digit, so the judge follows the reply's digits (LocalJudge's comment).
    /// Recomputed here from full forward passes without a cache (HiddenStateTrace over the prompt + digits), with
    /// the token sets read from the vocabulary's own entries.
    func testDigitByDigitNumbersMatchFullForwardPasses() throws {
        let path = try sharedFolder().appendingPathComponent("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) not present") }
        let loaded = try ModelLoader.load(path: path)
        let judge = LocalJudge(loaded)
        XCTAssertTrue(judge.spellsDigits)
        let tok = loaded.tokenizer.tokenizer
        let V = loaded.config.vocabSize
        // byte-level BPE: "Ġ" is a space; a digit continues a number only with nothing before it
        var starts: [Int: Int] = [:], digit: [Int: Int] = [:], continuing: [Int] = []
        for id in 0..<V where !tok.isSpecial(id) {
            guard let e = tok.tokenString(id) else { continue }
            let text = e.replacingOccurrences(of: "Ġ", with: " ").replacingOccurrences(of: "Ċ", with: "\n")
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !t.isEmpty, t.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(t), v <= 100 { starts[id] = v }
            if !e.isEmpty, e.allSatisfy({ $0.isASCII && $0.isNumber }) {
                continuing.append(id)
                if e.count == 1 { digit[Int(e)!] = id }
            }
        }
        XCTAssertEqual(Set(starts.values), Set(0...9), "SmolLM2 has a token for each digit and none for 10...100")
        func probs(_ ids: [Int]) throws -> [Double] {
            let logits = try HiddenStateTrace.run(model: loaded.model, tokens: ids).logits
            let last = logits[(ids.count - 1) * V ..< ids.count * V].map(Double.init)
            let m = last.max()!
            let z = last.reduce(0) { $0 + exp($1 - m) }
            return last.map { exp($0 - m) / z }
        }
        let gen = Generator(loaded)
        for prompt in ["Complete the sequence with one number only: 10, 20, 30, 40,", "Pick a random number from 1 to 100."] {
            let ids = try gen.promptIds(for: prompt, raw: false)
            let p0 = try probs(ids)
            var expected = [Int: Double]()
            for d in 0...9 {
                let ofD = starts.filter { $0.value == d }.map(\.key)
                let pd = ofD.reduce(0) { $0 + p0[$1] }
                let best = ofD.max { p0[$0] < p0[$1] }!
                let p1 = try probs(ids + [best])
                expected[d, default: 0] += pd * (1 - continuing.reduce(0) { $0 + p1[$1] })
                if d == 0 { continue }
                for e in 0...9 where !(d == 1 && e == 0) { expected[10 * d + e, default: 0] += pd * p1[digit[e]!] }
                if d == 1 {
                    let p2 = try probs(ids + [best, digit[0]!])
                    expected[10, default: 0] += pd * p1[digit[0]!] * (1 - continuing.reduce(0) { $0 + p2[$1] })
                    expected[100, default: 0] += pd * p1[digit[0]!] * p2[digit[0]!]
                }
            }
            let got = try judge.numberDistribution(prompt: prompt)
            XCTAssertEqual(Set(got.keys), Set(expected.filter { $0.value > 0 }.keys), prompt)
            // relative 1e-4: the judge's cached one-token steps and these uncached passes differ by f32 rounding only
            // (measured 1.1e-5 .. 1.8e-5 on these prompts); a wrong term or token set is off by far more
            for (n, p) in expected { XCTAssertEqual(got[n] ?? 0, p, accuracy: 1e-9 + 1e-4 * p, "\(prompt): P(\(n))") }
            let mass = expected.values.reduce(0, +)
            let score = try judge.scoreSync(prompt: prompt)
            if mass >= 0.25 {
                XCTAssertEqual(try XCTUnwrap(score), expected.reduce(0) { $0 + Double($1.key) * $1.value } / mass, accuracy: 1e-3)
            } else {
                XCTAssertNil(score)
            }
        }
        // The sequence prompt's greedy reply begins "10": its score is above 9, which a first-token reading of
        // digits could never give.
        let seq = "Complete the sequence with one number only: 10, 20, 30, 40,"
        let reply = try gen.generate(promptIds: try gen.promptIds(for: seq, raw: false), options: GenerationOptions(maxTokens: 3)).text
        XCTAssertTrue(reply.hasPrefix("10"), reply)
        XCTAssertGreaterThan(try XCTUnwrap(try judge.scoreSync(prompt: seq)), 9)
    }
}
