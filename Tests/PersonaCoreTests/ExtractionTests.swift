import Foundation
import XCTest
import PersonaModels
@testable import PersonaCore

/// A contrastive "trait" for the template-less stories260K model: raw happy vs sad story openings.
/// Rows are "{instruction}\n\n{question}" after BOS; questions are neutral story continuations.
let storyTraitJSON = """
{
  "name": "happy",
  "positive": "A high projection means a happy, cheerful story (vs a sad one).",
  "instruction": [
    {"pos": "Lily was very happy. She smiled and laughed and played all day.", "neg": "Lily was very sad. She cried and cried all day."},
    {"pos": "Tom felt so happy and excited. He jumped and clapped his hands.", "neg": "Tom felt so sad and scared. He sat alone and was upset."},
    {"pos": "It was a sunny, happy day. Everyone was smiling and having fun.", "neg": "It was a dark, sad day. Everyone was crying and nobody had fun."},
    {"pos": "Sam was glad. He hugged his mom and said, \\"I love you!\\"", "neg": "Sam was sad. He lost his toy and started to cry."},
    {"pos": "The little girl was full of joy. She sang a happy song.", "neg": "The little girl was very unhappy. She was angry and sad."}
  ],
  "questions": ["One day, they went to the park.", "Then mom came into the room.", "Later, a little dog ran up to them.",
                "After lunch, it was time to play.", "At night, they went to bed.", "The next morning, the sun came up."],
  "eval_questions": ["Then a big bird flew down.", "Soon, dad came home from work.", "They saw a red ball in the grass.",
                     "After that, they went to the store."],
  "eval_prompt": "How happy is this story? {question} {answer} Reply with a number from 0 to 100."
}
"""

/// Held-out happy and sad story texts written for the test (no instruction text in context).
enum HeldOutStories {
    static let happy = ["Ben was so happy. He laughed and played with his friends in the sun.",
                        "Mia smiled. She loved her new doll and gave her mom a big hug.",
                        "The dog was happy and wagged its tail. They had so much fun together.",
                        "Everyone laughed and sang. It was the best day ever!",
                        "Anna was glad to see her friend. They played and smiled all day.",
                        "The sun was shining and the birds sang. Max was very happy.",
                        "Lucy got a big cake for her birthday. She was so excited and happy.",
                        "Tim and his dad went to the beach. They laughed and had a great time.",
                        "The bunny found a yummy carrot. It hopped around with joy.",
                        "Sara made a new friend at school. She felt warm and happy inside."]
    static let sad = ["Ben was so sad. He cried because his friends went away.",
                      "Mia was upset. Her doll was broken and she cried and cried.",
                      "The dog was sad and alone. Nobody wanted to play with it.",
                      "Everyone was crying. It was the worst day ever.",
                      "Anna was sad and angry. Her friend did not come to play.",
                      "It was dark and cold. Max was scared and very sad.",
                      "Lucy dropped her cake on the floor. She was sad and started to cry.",
                      "Tim lost his dad in the big store. He was scared and alone.",
                      "The bunny could not find any food. It was hungry and sad.",
                      "Sara had no friends at school. She felt lonely and sad inside."]

    /// Mean projection over the text's tokens when it follows a neutral opener (persona_vectors' cal_projection, response average).
    static func project(_ text: String, _ loaded: LoadedModel, _ v: TraitVector, _ row: Int) throws -> Double {
        guard let p = try TextProjection.project(prompt: "Once upon a time", answer: " " + text, loaded: loaded, vector: v, row: row).responseAvg else {
            throw VectorError("no answer tokens")
        }
        return p
    }
}

func storyTrait() throws -> TraitDefinition {
    try TraitDefinition.decode(Data(storyTraitJSON.utf8), source: "story trait", defaultName: "happy")
}

func tempFolder(_ name: String) -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("persona-\(name)-\(UUID().uuidString)")
    return u
}

final class ExtractionTests: XCTestCase {
    static let llama2Path = repoRoot().appendingPathComponent("Tests/PersonaModelsTests/Fixtures/llama2").path
    static var storiesPath: String { get throws { try sharedFolder().appendingPathComponent("models/stories260K/stories260K.gguf").path } }

    /// A small chat trait for the llama2 fixture (it has a chat template).
    func chatTrait() throws -> TraitDefinition {
        var t = try BuiltinTraits.resolve("refusal")
        t.instruction = Array(t.instruction.prefix(2))
        return t
    }

    func options(questions: Int, eval: Int, maxTokens: Int = 4, shard: Shard = .whole) -> ExtractionOptions {
        var o = ExtractionOptions()
        o.questionLimit = questions
        o.evalQuestionLimit = eval
        o.maxTokens = maxTokens
        o.seed = 7
        o.shard = shard
        return o
    }

    /// Mean differences from the pipeline equal a recomputation from HiddenStateTrace in this test.
    func testMeanDifferenceMatchesIndependentRecomputation() throws {
        let loaded = try ModelLoader.load(path: Self.llama2Path)
        XCTAssertNotNil(loaded.tokenizer.chatTemplate)
        let dir = tempFolder("meandiff"); defer { try? FileManager.default.removeItem(at: dir) }
        let run = try ExtractionRun(folder: dir, trait: try chatTrait(), options: options(questions: 3, eval: 0), loaded: loaded)
        try run.generate()
        let (kept, report) = run.filter(.extract, judged: false)
        XCTAssertEqual(report.pairs, 6)
        XCTAssertGreaterThan(kept.count, 2)
        let sums = try run.accumulate(kept)

        let bos = try XCTUnwrap(loaded.tokenizer.tokenizer.bosTokenId)
        let L = loaded.config.numLayers, D = loaded.config.hiddenSize
        var ref: [AverageMethod: [[Double]]] = [:]
        for m in AverageMethod.allCases { ref[m] = [[Double]](repeating: [Double](repeating: 0, count: D), count: L + 1) }
        for (pos, neg) in kept {
            for (r, sign) in [(pos, 1.0), (neg, -1.0)] {
                // BOS exactly once, at the start (the chat template holds it; nothing added again).
                XCTAssertEqual(r.promptIds.first, bos)
                XCTAssertEqual(r.promptIds.filter { $0 == bos }.count, 1)
                XCTAssertTrue(r.prompt.contains(r.question))
                let ids = r.promptIds + r.answerIds
                let h = try HiddenStateTrace.run(model: loaded.model, tokens: ids).hiddenStates
                XCTAssertEqual(h.count, L + 1)
                let P = r.promptIds.count, T = ids.count
                for row in 0...L {
                    for i in 0..<D {
                        var resp = 0.0, prompt = 0.0
                        for t in P..<T { resp += Double(h[row][t * D + i]) }
                        for t in 0..<P { prompt += Double(h[row][t * D + i]) }
                        ref[.responseAvg]![row][i] += sign * resp / Double(T - P) / Double(kept.count)
                        ref[.promptAvg]![row][i] += sign * prompt / Double(P) / Double(kept.count)
                        ref[.promptLast]![row][i] += sign * Double(h[row][(P - 1) * D + i]) / Double(kept.count)
                    }
                }
            }
        }
        var maxAbs = 0.0
        for m in AverageMethod.allCases {
            let v = try sums.vector(trait: "refusal", method: m)
            XCTAssertEqual(v.rows.count, L + 1)
            for row in 0...L { for i in 0..<D {
                let d = abs(Double(v.rows[row][i]) - ref[m]![row][i])
                maxAbs = max(maxAbs, d)
                XCTAssertLessThan(d, 1e-5, "\(m) row \(row) dim \(i)")
            } }
        }
        XCTAssertGreaterThan(ref[.responseAvg]![L].map(abs).max()!, 1e-3, "reference vector should not be trivially zero")
    }

    /// Two shards merged equal the single run bit for bit (same rows: every row has its own seed).
    func testShardMergeEqualsSingleRun() throws {
        let loaded = try ModelLoader.load(path: Self.llama2Path)
        let trait = try chatTrait()
        let base = tempFolder("shards"); defer { try? FileManager.default.removeItem(at: base) }
        var results: [URL] = []
        for shard in [Shard.whole, Shard(index: 0, count: 2), Shard(index: 1, count: 2)] {
            let dir = base.appendingPathComponent("s\(shard.index)of\(shard.count)")
            let run = try ExtractionRun(folder: dir, trait: trait, options: options(questions: 3, eval: 0, shard: shard), loaded: loaded)
            try run.generate()
            _ = try run.accumulateAndSave(judged: false)
            results.append(dir)
        }
        let single = try ExtractionRun.readJSON(SumsFile.self, from: results[0].appendingPathComponent("sums.json"))
        let merged = try ExtractionPipeline.mergeSums([results[2], results[1]])
        XCTAssertEqual(merged.sums.positiveCount, single.sums.positiveCount)
        XCTAssertEqual(merged.sums.negativeCount, single.sums.negativeCount)
        XCTAssertGreaterThan(single.sums.positiveCount, 2)
        // Exact: the sums are sums of quantized averages, so the split does not change a bit.
        XCTAssertTrue(merged.sums == single.sums, "merged sums differ from the single run's")
        for m in AverageMethod.allCases {
            let a = try single.sums.vector(trait: "t", method: m), b = try merged.sums.vector(trait: "t", method: m)
            XCTAssertTrue(a.rows.map { $0.map(\.bitPattern) } == b.rows.map { $0.map(\.bitPattern) }, "\(m.rawValue) vectors differ")
        }
        // Shards really split the rows.
        let s0 = try ExtractionRun.open(folder: results[1], loaded: loaded), s1 = try ExtractionRun.open(folder: results[2], loaded: loaded)
        XCTAssertTrue(Set(s0.responses.keys).isDisjoint(with: s1.responses.keys))
        XCTAssertEqual(Set(s0.responses.keys).union(s1.responses.keys), Set(try ExtractionRun.open(folder: results[0], loaded: loaded).responses.keys))
        // Incomplete or repeated shard sets are refused.
        XCTAssertThrowsError(try ExtractionPipeline.mergeSums([results[1]]))
        XCTAssertThrowsError(try ExtractionPipeline.mergeSums([results[1], results[1]]))
    }

    /// Killed midway (after k rows, plus a torn half-written line), the rerun finishes with no lost or
    /// duplicated rows and the same rows as an uninterrupted run.
    func testResumeAfterKill() throws {
        let loaded = try ModelLoader.load(path: Self.storiesPath)
        let trait = try storyTrait()
        let opts = options(questions: 3, eval: 1, maxTokens: 16)
        let base = tempFolder("resume"); defer { try? FileManager.default.removeItem(at: base) }
        let a = base.appendingPathComponent("interrupted"), b = base.appendingPathComponent("whole")

        let first = try ExtractionRun(folder: a, trait: trait, options: opts, loaded: loaded)
        XCTAssertTrue(first.raw)
        let total = ExtractionRun.sets.reduce(0) { $0 + 2 * first.units($1).count }
        XCTAssertEqual(total, (3 + 1) * 5 * 2)
        XCTAssertEqual(try first.generate(stopAfter: 7), 7)
        // A torn write of the row in flight.
        let log = a.appendingPathComponent("responses.jsonl")
        let h = try FileHandle(forWritingTo: log); h.seekToEndOfFile(); h.write(Data("{\"set\":\"extract\",\"side\":\"p".utf8)); h.closeFile()

        let resumed = try ExtractionRun(folder: a, trait: trait, options: opts, loaded: loaded)
        XCTAssertEqual(resumed.responses.count, 7)
        XCTAssertEqual(try resumed.generate(), total - 7)
        let whole = try ExtractionRun(folder: b, trait: trait, options: opts, loaded: loaded)
        XCTAssertEqual(try whole.generate(), total)

        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, total, "no duplicated or torn lines")
        let reread = try ExtractionRun(folder: a, trait: trait, options: opts, loaded: loaded)
        XCTAssertEqual(reread.responses.count, total)
        XCTAssertEqual(reread.responses, whole.responses, "resumed rows equal an uninterrupted run")
        XCTAssertEqual(try reread.generate(), 0, "nothing left to do")
        // Raw prompt layout for template-less models: BOS + "{instruction}\n\n{question}".
        let r = try XCTUnwrap(reread.responses["extract/q0/i0/s0/pos"])
        XCTAssertEqual(r.promptIds, loaded.tokenizer.tokenizer.encode(trait.instruction[0].pos + "\n\n" + trait.questions[0], addSpecialTokens: true))
        // Different settings in the same folder are refused.
        var other = opts; other.maxTokens = 17
        XCTAssertThrowsError(try ExtractionRun(folder: a, trait: trait, options: other, loaded: loaded))
    }

    /// Batched generation draws what one-at-a-time generation draws (each row has its own seed), and a run
    /// started with one batch size resumes with another; batched accumulation equals per-row traces.
    func testBatchSizeDoesNotChangeRowsOrSums() throws {
        let loaded = try ModelLoader.load(path: Self.storiesPath)
        let trait = try storyTrait()
        let opts = options(questions: 2, eval: 1, maxTokens: 12)
        let base = tempFolder("batch"); defer { try? FileManager.default.removeItem(at: base) }
        let single = try ExtractionRun(folder: base.appendingPathComponent("one"), trait: trait, options: opts, loaded: loaded)
        let total = ExtractionRun.sets.reduce(0) { $0 + 2 * single.units($1).count }
        XCTAssertEqual(try single.generate(batchSize: 1), total)

        let mixedFolder = base.appendingPathComponent("mixed")
        let first = try ExtractionRun(folder: mixedFolder, trait: trait, options: opts, loaded: loaded)
        XCTAssertEqual(try first.generate(batchSize: 6, stopAfter: 9), 9)
        let resumed = try ExtractionRun(folder: mixedFolder, trait: trait, options: opts, loaded: loaded)
        XCTAssertEqual(try resumed.generate(batchSize: 4), total - 9)
        XCTAssertEqual(resumed.responses, single.responses, "rows are the same whatever the batch size")
        XCTAssertGreaterThan(Set(single.responses.values.map(\.answerIds)).count, total / 2, "rows differ from each other (seeds per row)")

        let kept = single.filter(.extract, judged: false).kept
        XCTAssertFalse(kept.isEmpty)
        let batched = try single.accumulate(kept, batchSize: 3)
        var perRow = ActivationSums(numRows: loaded.config.numLayers + 1, hiddenSize: loaded.config.hiddenSize)
        for (pos, neg) in kept {
            for (r, isPos) in [(pos, true), (neg, false)] {
                let t = try HiddenStateTrace.run(model: loaded.model, tokens: r.promptIds + r.answerIds)
                try perRow.add(hiddenStates: t.hiddenStates, promptLength: r.promptIds.count, positive: isPos)
            }
        }
        for m in AverageMethod.allCases {
            let a = try batched.vector(trait: "happy", method: m), b = try perRow.vector(trait: "happy", method: m)
            for row in 0...loaded.config.numLayers {
                XCTAssertLessThanOrEqual(zip(a.rows[row], b.rows[row]).map { abs($0 - $1) }.max() ?? 0, 1e-5, "\(m) row \(row)")
            }
        }
    }

    func testFilterIsRowAlignedAndCountsEachRule() throws {
        let loaded = try ModelLoader.load(path: Self.storiesPath)
        let dir = tempFolder("filter"); defer { try? FileManager.default.removeItem(at: dir) }
        let run = try ExtractionRun(folder: dir, trait: try storyTrait(), options: options(questions: 1, eval: 0, maxTokens: 4), loaded: loaded)
        try run.generate()
        // 5 pairs with hand-set scores: (pos trait, pos coherence, neg trait, neg coherence)
        let scores: [(Double?, Double?, Double?, Double?)] = [(80, 90, 10, 90),   // kept
                                                              (50, 50, 49.9, 50),  // kept: boundaries (>= t, < 100 - t, >= 50)
                                                              (49, 90, 10, 90),    // pos trait too low
                                                              (90, 90, 50, 90),    // neg trait not < 50
                                                              (90, 40, nil, 90)]   // pos incoherent, neg score missing
        for p in run.pairs(.extract) {
            let sc = scores[p.unit.instructionIndex]
            try run.record(JudgmentRecord(key: p.pos!.key, trait: sc.0, coherence: sc.1, judge: "hand"))
            try run.record(JudgmentRecord(key: p.neg!.key, trait: sc.2, coherence: sc.3, judge: "hand"))
        }
        let (kept, rep) = run.filter(.extract, judged: true)
        XCTAssertEqual(kept.map { $0.pos.instructionIndex }, [0, 1])
        XCTAssertEqual(kept.map { $0.neg.instructionIndex }, [0, 1])
        XCTAssertEqual(rep.pairs, 5)
        XCTAssertEqual(rep.positiveTraitOK, 4)
        XCTAssertEqual(rep.negativeTraitOK, 3)
        XCTAssertEqual(rep.positiveCoherent, 4)
        XCTAssertEqual(rep.negativeCoherent, 5)
        XCTAssertEqual(rep.missingScores, 1)
        XCTAssertEqual(rep.kept, 2)
        XCTAssertTrue(rep.text.contains("kept (all of the above)     2"), rep.text)
        XCTAssertTrue(rep.text.contains("pos coherence >= 50 "), rep.text)
        var stricter = rep
        stricter.coherenceThreshold = 70
        XCTAssertTrue(stricter.text.contains("pos coherence >= 70 ") && stricter.text.contains("neg coherence >= 70 "),
                      "the text states the threshold in use: \(stricter.text)")
        // persona_vectors-style CSV with the judged columns.
        try run.writeCSVs()
        let rows = CSV.parse(try String(contentsOf: dir.appendingPathComponent("pos.csv"), encoding: .utf8))
        XCTAssertEqual(rows[0], ["question", "prompt", "answer", "question_id", "happy", "coherence"])
        XCTAssertEqual(rows.count, 6)
        XCTAssertEqual(rows[1][4], "80.0")
        // Judgments survive a reopen (write-ahead log).
        let reopened = try ExtractionRun.open(folder: dir, loaded: loaded)
        XCTAssertEqual(reopened.filter(.extract, judged: true).report, rep)
    }

    /// A rerun may change the thresholds alone: the same answers and judgments are filtered again (nothing is
    /// generated twice) and the old thresholds' outputs go; any other change is refused, naming each field.
    func testRerunMayChangeOnlyTheThresholds() throws {
        let loaded = try ModelLoader.load(path: Self.storiesPath)
        let trait = try storyTrait()
        let dir = tempFolder("refilter"); defer { try? FileManager.default.removeItem(at: dir) }
        let opts = options(questions: 1, eval: 0, maxTokens: 4)
        let run = try ExtractionRun(folder: dir, trait: trait, options: opts, loaded: loaded)
        XCTAssertFalse(run.refiltered)
        let total = try run.generate()
        for p in run.pairs(.extract) {
            let t = 60 + 8 * Double(p.unit.instructionIndex)   // 60, 68, 76, 84, 92
            try run.record(JudgmentRecord(key: p.pos!.key, trait: t, coherence: 90, judge: "hand"))
            try run.record(JudgmentRecord(key: p.neg!.key, trait: 5, coherence: 90, judge: "hand"))
        }
        XCTAssertEqual(try run.accumulateAndSave(judged: true).reports[0].kept, 5)
        let sums = dir.appendingPathComponent("sums.json"), settings = dir.appendingPathComponent("run.json")
        XCTAssertTrue(FileManager.default.fileExists(atPath: sums.path))
        let before = try Data(contentsOf: settings)

        // Other options: refused, each differing field named (run.json's value first), nothing touched.
        var other = opts; other.maxTokens = 5; other.seed = 8
        XCTAssertThrowsError(try ExtractionRun(folder: dir, trait: trait, options: other, loaded: loaded)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("options.maxTokens: 4 / 5") && m.contains("options.seed: 7 / 8"), m)
            XCTAssertFalse(m.contains("threshold"), m)
        }
        var otherTrait = trait; otherTrait.questions[0] = "Then it rained."
        XCTAssertThrowsError(try ExtractionRun(folder: dir, trait: otherTrait, options: opts, loaded: loaded)) { e in
            XCTAssertTrue("\(e)".contains("traitDefinition.questions[0]: \"One day, they went to the park.\" / \"Then it rained.\""), "\(e)")
        }
        var thresholdsAndMore = opts; thresholdsAndMore.threshold = 80; thresholdsAndMore.maxTokens = 5
        XCTAssertThrowsError(try ExtractionRun(folder: dir, trait: trait, options: thresholdsAndMore, loaded: loaded))
        XCTAssertEqual(try Data(contentsOf: settings), before)
        XCTAssertTrue(FileManager.default.fileExists(atPath: sums.path))

        // Thresholds alone: adopted, the old sums removed, the same answers filtered again.
        var stricter = opts; stricter.threshold = 75; stricter.coherenceThreshold = 60
        let rerun = try ExtractionRun(folder: dir, trait: trait, options: stricter, loaded: loaded)
        XCTAssertTrue(rerun.refiltered)
        XCTAssertFalse(FileManager.default.fileExists(atPath: sums.path), "the old thresholds' sums are not left beside the new run.json")
        XCTAssertEqual(rerun.responses, run.responses)
        XCTAssertEqual(try rerun.generate(), 0, "nothing generated again (of \(total))")
        XCTAssertEqual(rerun.filter(.extract, judged: true).kept.map { $0.pos.instructionIndex }, [2, 3, 4])
        XCTAssertEqual(try rerun.accumulateAndSave(judged: true).reports[0].kept, 3)
        XCTAssertEqual(try ExtractionRun.open(folder: dir, loaded: loaded).options, stricter)
        XCTAssertFalse(try ExtractionRun(folder: dir, trait: trait, options: stricter, loaded: loaded).refiltered)
    }

    /// A judge that scores nothing stops the run with the counts and what to do, not only "see filter.json".
    func testNoScoreAtAllSaysWhy() throws {
        let loaded = try ModelLoader.load(path: Self.storiesPath)
        let dir = tempFolder("noscore"); defer { try? FileManager.default.removeItem(at: dir) }
        let run = try ExtractionRun(folder: dir, trait: try storyTrait(), options: options(questions: 1, eval: 0, maxTokens: 4), loaded: loaded)
        try run.generate()
        for p in run.pairs(.extract) {
            try run.record(JudgmentRecord(key: p.pos!.key, trait: nil, coherence: nil, judge: "mute"))
            try run.record(JudgmentRecord(key: p.neg!.key, trait: 90, coherence: nil, judge: "mute"))
        }
        XCTAssertThrowsError(try run.accumulateAndSave(judged: true)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("no extraction pair passed the filter (5 pairs)"), m)
            XCTAssertTrue(m.contains("pairs with a missing score  5"), m)
            XCTAssertTrue(m.contains("The judge scored none of them") && m.contains("--judge none"), m)
        }
        // one scored pair that fails a rule: the counts, without the judge advice
        let first = run.pairs(.extract)[0]
        try run.record(JudgmentRecord(key: first.pos!.key, trait: 10, coherence: 90, judge: "hand"))
        try run.record(JudgmentRecord(key: first.neg!.key, trait: 10, coherence: 90, judge: "hand"))
        XCTAssertThrowsError(try run.accumulateAndSave(judged: true)) { e in
            XCTAssertTrue("\(e)".contains("pos trait >= 50             0"), "\(e)")
            XCTAssertFalse("\(e)".contains("The judge scored none"), "\(e)")
        }
    }

    /// The judge stage scores every row once (trait + coherence), records it, and a rerun asks nothing.
    func testJudgeStageIsResumable() async throws {
        let loaded = try ModelLoader.load(path: Self.storiesPath)
        let dir = tempFolder("judge"); defer { try? FileManager.default.removeItem(at: dir) }
        var trait = try storyTrait()
        trait.evalPrompt = "How happy? {question} ANSWER<{answer}>END"
        let run = try ExtractionRun(folder: dir, trait: trait, options: options(questions: 1, eval: 1, maxTokens: 4), loaded: loaded)
        try run.generate()
        let judge = LengthJudge()
        try await run.judge(with: judge, inFlight: 3)
        XCTAssertEqual(judge.calls, 2 * run.responses.count)
        for r in run.responses.values {
            XCTAssertEqual(run.judgments[r.key]?.trait, Double(min(100, r.answer.count)), r.key)
            XCTAssertEqual(run.judgments[r.key]?.coherence, 60)
        }
        let again = try ExtractionRun.open(folder: dir, loaded: loaded)
        try await again.judge(with: judge)
        XCTAssertEqual(judge.calls, 2 * run.responses.count, "nothing judged twice")
    }

    /// End to end on stories260K with no judge: the vector separates held-out happy vs sad stories.
    func testEndToEndStoriesSeparatesHeldOutTexts() throws {
        let loaded = try ModelLoader.load(path: Self.storiesPath)
        let dir = tempFolder("e2e"); defer { try? FileManager.default.removeItem(at: dir) }
        var opts = options(questions: 6, eval: 4, maxTokens: 16)
        opts.seed = 1
        let run = try ExtractionRun(folder: dir, trait: try storyTrait(), options: opts, loaded: loaded)
        try run.generate()
        let (sums, _, evalKept) = try run.accumulateAndSave(judged: false)
        let out = try ExtractionPipeline.finish(sums: sums, trait: "happy", model: loaded.name, positive: run.trait.positive,
                                                evalPairs: evalKept, forwardWith: run, out: dir)
        // stories260K's sampled continuations (temperature 1) barely carry the mood, so response_avg separates
        // at about chance here (docs/extraction.md); the prompt representations carry it. Check prompt_avg.
        let report = try XCTUnwrap(out.reports.first { $0.method == "prompt_avg" })
        let best = try XCTUnwrap(report.recommendedRow)
        let auroc = try XCTUnwrap(report.rows[best].auroc)
        // Held-out eval questions: measured 1.00 at row 2 (rows 2-5 tie; row 2 is nearest L/3).
        XCTAssertGreaterThanOrEqual(auroc, 0.95, report.table)
        XCTAssertEqual(report.evalPositive, 4 * 5)
        // The vector file holds the recommendation and loads back.
        let back = try VectorFiles.load(dir.appendingPathComponent("vectors.safetensors"), numLayers: loaded.config.numLayers)
        XCTAssertEqual(back.first { $0.method == "prompt_avg" }?.recommendedRow, best)
        XCTAssertEqual(back.count, 3)

        // Held-out texts written for the test (no instruction in context), projected like cal_projection.
        let v = try XCTUnwrap(out.vectors.first { $0.method == "prompt_avg" })
        let hp = try HeldOutStories.happy.map { try HeldOutStories.project($0, loaded, v, best) }
        let sp = try HeldOutStories.sad.map { try HeldOutStories.project($0, loaded, v, best) }
        let heldOut = Separation.auroc(positive: hp, negative: sp)
        // Measured 0.87. For 10 vs 10 texts, AUROC >= 0.80 has p = 0.012 under no separation (exact Mann-Whitney).
        XCTAssertGreaterThanOrEqual(heldOut, 0.80, "hand-written held-out AUROC \(heldOut)")
    }
}

/// A deterministic judge: trait = answer length in characters (capped at 100), coherence = 60; counts calls.
final class LengthJudge: Judge, @unchecked Sendable {
    private let lock = NSLock()
    private var _calls = 0
    var calls: Int { lock.withLock { _calls } }
    var name: String { "length" }
    func score(prompt: String) async throws -> Double? {
        lock.withLock { _calls += 1 }
        if prompt.hasPrefix("How happy") {
            guard let a = prompt.range(of: "ANSWER<"), let b = prompt.range(of: ">END") else { return nil }
            return Double(min(100, prompt[a.upperBound..<b.lowerBound].count))
        }
        return 60
    }
}
