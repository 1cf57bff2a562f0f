import Foundation
import XCTest
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
        let score = try judge.scoreSync(prompt: prompt)
        if mass >= 0.25 { XCTAssertEqual(score!, weighted / mass, accuracy: 1e-6) } else { XCTAssertNil(score) }
        XCTAssertGreaterThan(mass, 0, "digits should get some probability")
    }
}
