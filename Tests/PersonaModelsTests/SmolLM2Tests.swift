import Foundation
import PersonaGeneration
import PersonaModels
import PersonaTensor
import XCTest
@testable import PersonaTestSupport

/// SmolLM2-135M-Instruct (Q4_1 GGUF, ../shared/models/smollm2-135m-instruct): a real chat model, against
/// transformers running the same file dequantised by gguf-py (Scripts/make_smollm2_fixtures.py).
final class SmolLM2Tests: XCTestCase {
    func model() throws -> URL {
        let url = try TestPaths.shared.appendingPathComponent("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) not present (set PERSONA_SHARED to the shared folder)")
        }
        return url
    }

    func reference() throws -> Reference {
        try Reference(safetensors: TestPaths.fixtures.appendingPathComponent("smollm2.reference.safetensors"),
                      json: TestPaths.fixtures.appendingPathComponent("smollm2.reference.json"))
    }

    /// Exact precision: every hidden-state row and the logits equal transformers' f32 forward of the dequantised
    /// weights up to f32 rounding. The bound scales with each row's size: f32 keeps ~7 digits and the residual
    /// stream of this model reaches magnitudes in the hundreds.
    func testHiddenStatesAndLogitsMatchTransformers() throws {
        let url = try model()
        let ref = try reference()
        let net = try ModelLoader.loadNetwork(path: url.path)
        XCTAssertEqual(net.config.numLayers, 30)
        let ids = ref.ints("input_ids")
        let kept = ref.ints("positions_kept")
        let trace = try HiddenStateTrace.run(model: net, tokens: ids)
        let H = net.config.hiddenSize
        for (i, h) in trace.hiddenStates.enumerated() {
            let expected = try ref.floats("hidden_states.\(i)").values
            let ours = kept.flatMap { p in Array(h[(p * H)..<((p + 1) * H)]) }
            let scale = expected.map(abs).max() ?? 1
            let d = maxAbsDiff(ours, expected)
            XCTAssertLessThanOrEqual(d, 2e-5 * max(scale, 1), "hidden_states.\(i): max |diff| \(d), max |ref| \(scale)")
        }
        let V = net.config.vocabSize
        let logits = Array(trace.logits[((ids.count - 1) * V)..<(ids.count * V)])
        let expected = try ref.floats("logits_last").values
        let d = maxAbsDiff(logits, expected)
        XCTAssertLessThanOrEqual(d, 2e-5 * max(expected.map(abs).max() ?? 1, 1), "logits: max |diff| \(d)")
    }

    /// A decode step over more than 512 cached positions splits attention into position chunks over the threads,
    /// all heads of a chunk together (decodeAttention: pk_attention_partial + pk_attention_merge). Its logits equal
    /// those of one uncached forward pass of the whole sequence, whose attention goes head by head. With an f16
    /// cache too (both read the same rounded rows, so the same bound): the chunks' row offsets count f16 elements.
    func testLongContextDecodeEqualsUncachedForward() throws {
        let net = try ModelLoader.loadNetwork(path: model().path)
        let ids = (0..<900).map { ($0 * 7919) % 40000 + 100 }
        for type in KVCacheType.allCases {
            net.kvCacheType = type
            let cache = net.makeCache(capacity: ids.count)
            XCTAssertEqual(cache.type, type)
            try net.forward(Array(ids.prefix(ids.count - 3)), cache: cache, logits: .none)
            var last: [Float] = []
            for id in ids.suffix(3) { last = Array(try net.forward([id], cache: cache, logits: .last)) }
            let full = Array(try net.forward(ids, cache: net.makeCache(capacity: ids.count), logits: .last))
            let d = maxAbsDiff(last, full), scale = full.map(abs).max() ?? 1
            XCTAssertLessThanOrEqual(d, 2e-5 * max(scale, 1), "\(type): max |diff| \(d), max |logit| \(scale)")
        }
    }

    /// A prompt's attention goes by blocks of query positions (pk_attention_causal), each query with the operations
    /// of one head alone, and the prompt paths of the matrix products compute each token alone. So a prompt fed in
    /// two parts (the second appended to a cache, as the server's prefix reuse does, its blocks starting mid-tile)
    /// gives the logits of one pass, bit for bit, in both precisions. Parts of 4 tokens or fewer take the decode
    /// kernels (other sums, other bits), so both parts here are longer. An f16 cache too: the appended part's rows
    /// land at the f16 offsets the first part's attention did not read.
    func testPromptInPartsEqualsOnePassBitForBit() throws {
        let net = try ModelLoader.loadNetwork(path: model().path)
        let ids = (0..<300).map { ($0 * 7919) % 40000 + 100 }
        for (precision, type) in [(MatmulPrecision.exact, KVCacheType.f32), (.native, .f32), (.exact, .f16), (.native, .f16)] {
            net.precision = precision
            net.kvCacheType = type
            let whole = Array(try net.forward(ids, cache: net.makeCache(capacity: ids.count), logits: .all))
            for split in [37, 250] {
                let cache = net.makeCache(capacity: ids.count)
                let first = Array(try net.forward(Array(ids.prefix(split)), cache: cache, logits: .all))
                let second = Array(try net.forward(Array(ids.dropFirst(split)), cache: cache, logits: .all))
                let parts = first + second
                XCTAssertEqual(parts.count, whole.count)
                if let i = parts.indices.first(where: { parts[$0].bitPattern != whole[$0].bitPattern }) {
                    let V = net.config.vocabSize
                    XCTFail("\(precision), \(type) cache, split at \(split): position \(i / V) logit \(i % V) \(parts[i]) != \(whole[i])")
                }
            }
        }
    }

    /// The user's path: the GGUF's chat template and tokenizer, then greedy decoding with the KV cache, against
    /// transformers' greedy answers (uncached recompute), EOS included; with an f32 cache and with an f16 one
    /// (`--kv-cache f16`), whose rounding of keys and values leaves these answers as they are.
    func testGreedyChatAnswersMatchTransformers() throws {
        let url = try model()
        let ref = try reference()
        let loaded = try ModelLoader.load(path: url.path)
        let gen = Generator(loaded)
        let cases = ref.json["greedy"] as? [[String: Any]] ?? []
        XCTAssertFalse(cases.isEmpty)
        for type in KVCacheType.allCases {
          loaded.model.kvCacheType = type
          for c in cases {
            let q = c["question"] as! String
            let promptIds = (c["prompt_ids"] as! [NSNumber]).map(\.intValue)
            let expected = (c["greedy_ids"] as! [NSNumber]).map(\.intValue)
            XCTAssertEqual(try gen.promptIds(for: q, raw: false), promptIds, "chat prompt ids for \(q)")
            let result = try gen.generate(promptIds: promptIds, options: GenerationOptions(maxTokens: c["max_new_tokens"] as! Int))
            // transformers' ids end with the EOS it stopped on; ours report the stop as the finish reason
            let stopped = c["stopped_on_eos"] as? Bool == true
            XCTAssertEqual(result.tokenIds, stopped ? Array(expected.dropLast()) : expected, "greedy ids for \(q)")
            XCTAssertEqual(result.text, c["greedy_text"] as? String, q)
            XCTAssertEqual(result.finishReason, stopped ? .eos : .length, q)
          }
        }
    }

    /// An f16 cache takes half the bytes of an f32 one, and its logits differ from the f32 cache's (so the rounding
    /// is in effect) by what rounding keys and values to f16 moves them: the RMS change stays under 2^-10 of the RMS
    /// logit (the size of the f16 rounding of each key and value, 2^-11 relative, twice; measured 1.3e-4, max 0.016
    /// on logits of about 20) on a 300-token prompt, with the same top token wherever f32's top two are 0.5 apart.
    func testF16CacheHalvesTheBytesAndMovesLogitsByRoundingOnly() throws {
        let net = try ModelLoader.loadNetwork(path: model().path)
        let ids = (0..<300).map { ($0 * 7919) % 40000 + 100 }
        net.kvCacheType = .f32
        let c32 = net.makeCache(capacity: ids.count)
        let a = Array(try net.forward(ids, cache: c32, logits: .all))
        net.kvCacheType = .f16
        let c16 = net.makeCache(capacity: ids.count)
        let b = Array(try net.forward(ids, cache: c16, logits: .all))
        XCTAssertEqual(c16.byteCount * 2, c32.byteCount)
        XCTAssertNotEqual(a, b, "the f16 cache gave the f32 cache's logits bit for bit: no rounding in effect")
        let V = net.config.vocabSize
        var sq = 0.0, dsq = 0.0
        for i in a.indices { sq += Double(a[i]) * Double(a[i]); dsq += Double(a[i] - b[i]) * Double(a[i] - b[i]) }
        XCTAssertLessThan((dsq / sq).squareRoot(), 0x1p-10, "RMS change over RMS logit")
        for p in 0..<ids.count {
            let ra = a[(p * V)..<((p + 1) * V)], rb = b[(p * V)..<((p + 1) * V)]
            let top = ra.indices.max { ra[$0] < ra[$1] }!
            let second = ra.indices.filter { $0 != top }.max { ra[$0] < ra[$1] }!
            if ra[top] - ra[second] > 0.5 { XCTAssertEqual(rb.indices.max { rb[$0] < rb[$1] }, top, "position \(p)") }
        }
    }
}
