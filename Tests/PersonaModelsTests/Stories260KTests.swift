import Foundation
import PersonaGeneration
import PersonaModels
import XCTest
@testable import PersonaTestSupport

/// stories260K is a real trained model: greedy decoding must reproduce its author's documented text.
final class Stories260KTests: XCTestCase {
    /// The documented continuation, read from the README beside the model (never copied into the repo).
    func documentedText() throws -> String {
        let readme = try String(contentsOf: TestPaths.stories260K.deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        let parts = readme.components(separatedBy: "```")
        guard parts.count >= 3 else { throw XCTSkip("README has no code block") }
        return parts[1].trimmingCharacters(in: .newlines)
    }

    func testGreedyOutputMatchesDocumentedText() throws {
        let loaded = try ModelLoader.load(path: TestPaths.stories260K.path)
        let gen = Generator(loaded)
        let prompt = "Once upon a time"
        let ids = try gen.promptIds(for: prompt, raw: true)
        XCTAssertEqual(ids.first, 1, "BOS once at the start")
        // llama2.c's 256 steps are positions 0..<256: BOS at 0, then every printed token (prompt tokens included).
        let result = try gen.generate(promptIds: ids, options: GenerationOptions(maxTokens: 256 - (ids.count - 1)))
        let expected = try documentedText()
        let produced = prompt + result.text
        // The documented block ends at step 256, mid-story: the 256 steps must give exactly that text.
        XCTAssertEqual(produced.trimmingCharacters(in: .whitespacesAndNewlines), expected,
                       "greedy text differs from the documented output")
    }

    func testHiddenStatesMatchTransformersGGUFLoader() throws {
        let st = TestPaths.fixtures.appendingPathComponent("stories260K.reference.safetensors")
        guard FileManager.default.fileExists(atPath: st.path) else { throw XCTSkip("no stories260K reference") }
        let ref = try Reference(safetensors: st, json: TestPaths.fixtures.appendingPathComponent("stories260K.reference.json"))
        let model = try ModelLoader.loadNetwork(path: TestPaths.stories260K.path)
        let ids = ref.ints("input_ids")
        let trace = try HiddenStateTrace.run(model: model, tokens: ids)
        for (i, h) in trace.hiddenStates.enumerated() {
            let d = maxAbsDiff(h, try ref.floats("hidden_states.\(i)").values)
            XCTAssertLessThanOrEqual(d, 1e-4, "stories260K hidden_states.\(i) max |diff| \(d)")
        }
        XCTAssertLessThanOrEqual(maxAbsDiff(trace.logits, try ref.floats("logits").values), 1e-4)
    }
}
