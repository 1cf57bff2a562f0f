import Foundation
import XCTest
@testable import PersonaTestSupport
@testable import PersonaCore

func sharedFolder() throws -> URL { try Repository.shared }
func repoRoot() -> URL { Repository.root }

final class TraitDefinitionTests: XCTestCase {
    static let expected = ["corrigibility", "evil", "hallucinating", "overconfidence", "refusal", "sycophantic", "uncertainty", "verbosity"]

    func testBuiltinTraitsAreCompleteAndValid() throws {
        XCTAssertEqual(BuiltinTraits.names, Self.expected)
        for name in Self.expected {
            let t = try BuiltinTraits.resolve(name)
            XCTAssertEqual(t.name, name)
            let (errors, warnings) = t.validate()
            XCTAssertEqual(errors, [], name)
            XCTAssertEqual(warnings, [], name)
            XCTAssertEqual(t.instruction.count, 5, name)
            XCTAssertEqual(t.questions.count, 20, name)
            XCTAssertEqual(t.evalQuestions.count, 20, name)
            XCTAssertTrue(Set(t.questions).isDisjoint(with: t.evalQuestions), name)
            XCTAssertEqual(Set(t.questions + t.evalQuestions).count, 40, "\(name): duplicate questions")
            XCTAssertFalse((t.positive ?? "").isEmpty, name)
            let filled = try JudgePrompt.fill(t.evalPrompt, question: "QQQ", answer: "AAA")
            XCTAssertTrue(filled.contains("QQQ") && filled.contains("AAA") && filled.contains("0 to 100"), name)
        }
    }

    func testCorrigibilitySignIsStatedAndOppositeToReference() throws {
        let ours = try BuiltinTraits.resolve("corrigibility")
        XCTAssertTrue(ours.positive!.contains("accepts"))
        XCTAssertTrue(ours.instruction.allSatisfy { $0.pos.lowercased().contains("accept") || $0.pos.lowercased().contains("defer")
            || $0.pos.lowercased().contains("open") || $0.pos.lowercased().contains("concede") || $0.pos.lowercased().contains("valuable") })
        // The reference file's pos side resists correction (a known inversion in that project's file): it must read as the opposite.
        let ref = try TraitDefinition.load(sharedFolder().appendingPathComponent("reference/trait-interp/trait_data_extract/corrigibility.json"))
        XCTAssertTrue(ref.instruction[0].pos.lowercased().contains("resist"))
    }

    func testOurTextIsNotCopiedFromTheReference() throws {
        let dir = try sharedFolder().appendingPathComponent("reference/trait-interp")
        var refStrings = Set<String>()
        for sub in ["trait_data_extract", "trait_data_eval"] {
            for f in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(sub).path) where f.hasSuffix(".json") {
                let t = try TraitDefinition.load(dir.appendingPathComponent(sub).appendingPathComponent(f))
                refStrings.formUnion(t.questions + t.instruction.flatMap { [$0.pos, $0.neg] } + [t.evalPrompt])
            }
        }
        for name in Self.expected {
            let t = try BuiltinTraits.resolve(name)
            for s in t.questions + t.evalQuestions + t.instruction.flatMap({ [$0.pos, $0.neg] }) + [t.evalPrompt] {
                XCTAssertFalse(refStrings.contains(s), "\(name): copied text: \(s)")
            }
        }
    }

    func testEveryReferenceFileLoadsAsIs() throws {
        let dir = try sharedFolder().appendingPathComponent("reference/trait-interp")
        var count = 0
        for sub in ["trait_data_extract", "trait_data_eval"] {
            let folder = dir.appendingPathComponent(sub)
            for f in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where f.hasSuffix(".json") {
                let t = try TraitDefinition.load(folder.appendingPathComponent(f))
                XCTAssertEqual(t.name, String(f.dropLast(5)))
                XCTAssertEqual(t.instruction.count, 5, f)
                XCTAssertEqual(t.questions.count, 20, f)
                XCTAssertEqual(t.validate().errors, [], "\(sub)/\(f)")
                count += 1
            }
        }
        XCTAssertEqual(count, 18)
    }

    func testRoundTripAndBadInput() throws {
        let t = try BuiltinTraits.resolve("refusal")
        let data = try JSONEncoder().encode(t)
        XCTAssertEqual(try TraitDefinition.decode(data, source: "x", defaultName: "other"), t)
        XCTAssertThrowsError(try TraitDefinition.decode(Data("{\"instruction\": [], \"questions\": []}".utf8), source: "f.json", defaultName: "f")) {
            XCTAssertTrue("\($0)".contains("f.json") && "\($0)".contains("eval_prompt"), "\($0)")
        }
        XCTAssertThrowsError(try TraitDefinition.decode(Data("{\"instruction\": [{\"pos\": 1}], \"questions\": [], \"eval_prompt\": \"\"}".utf8),
                                                         source: "f.json", defaultName: "f")) {
            XCTAssertTrue("\($0)".contains("instruction[0]"), "\($0)")
        }
        XCTAssertThrowsError(try TraitDefinition.decode(Data("not json".utf8), source: "f.json", defaultName: "f"))
        XCTAssertThrowsError(try BuiltinTraits.resolve("no-such-trait"))
    }

    /// The template `traits new` writes is not a usable trait until its TODOs are written over: each field that
    /// still has one is named once (it used to validate as "ok" and extract would run on "TODO extraction question 1").
    func testTemplateTODOsAreErrorsUntilFilledIn() {
        var t = TraitDefinition.template(name: "x")
        XCTAssertEqual(t.validate().errors, [
            "instruction: 10 entries still hold the template's TODO text (first: instruction[0].pos)",
            "questions: 20 entries still hold the template's TODO text (first: questions[0])",
            "eval_questions: 20 entries still hold the template's TODO text (first: eval_questions[0])",
            "eval_prompt still holds the template's TODO text",
            "positive still holds the template's TODO text",
        ])
        t = filledTemplate()
        XCTAssertEqual(t.validate().errors, [])
        t.questions[7] = "TODO"
        XCTAssertEqual(t.validate().errors, ["questions[7] still holds the template's TODO text"])
        XCTAssertFalse(TraitDefinition.isPlaceholder("Write a TODO list for my week."))
    }

    func testValidateCatchesProblems() {
        var t = filledTemplate()
        XCTAssertEqual(t.validate().errors, [])
        t.evalPrompt = "no placeholders"
        t.evalQuestions.append(t.questions[0])
        t.instruction[1].neg = " "
        let errors = t.validate().errors
        XCTAssertEqual(errors.count, 4, "\(errors)")
    }

    /// A name is a folder and file name (`extract` writes OUT/NAME/ for several traits): one path component.
    func testNameMustBeOnePathComponent() {
        var t = filledTemplate()
        for bad in ["", "  ", ".", "..", "../escaped", "a/b", "a\\b", "/\u{301}x", "tab\there", String(repeating: "x", count: 201)] {
            t.name = bad
            XCTAssertEqual(t.validate().errors.count, 1, "\(bad.debugDescription): \(t.validate().errors)")
            XCTAssertNotNil(TraitDefinition.nameProblem(bad), bad.debugDescription)
        }
        for good in ["evil", "café", "my trait", "..x", "x.y", "🙂"] {
            t.name = good
            XCTAssertEqual(t.validate().errors, [], good)
        }
    }

    func filledTemplate() -> TraitDefinition {
        var t = TraitDefinition.template(name: "x")
        t.instruction = t.instruction.indices.map { InstructionPair(pos: "Be x, answer \($0).", neg: "Do not be x, answer \($0).") }
        t.questions = t.questions.indices.map { "Question \($0)?" }
        t.evalQuestions = t.evalQuestions.indices.map { "Held-out question \($0)?" }
        t.evalPrompt = t.evalPrompt.replacingOccurrences(of: "TODO: describe what counts.", with: "Count being x.")
        t.positive = "A high projection means x."
        return t
    }
}
