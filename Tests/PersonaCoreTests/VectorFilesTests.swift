import Foundation
@testable import PersonaCore
import PersonaFormats
import PersonaModels
import PersonaTensor
import XCTest

/// Vector files: round trips for our format, persona_vectors .pt and control-vector GGUF; fixtures written by
/// torch / gguf / safetensors in Scripts/make_vector_fixtures.py; layer mapping against hand-worked cases.
final class VectorFilesTests: XCTestCase {
    // Found next to this file (symlinks resolved), so no bundle lookup is needed.
    static let fixtures = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/vectors")
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("persona-vectors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    func fixture(_ name: String) -> URL { Self.fixtures.appendingPathComponent(name) }

    /// expected.json from the fixture script.
    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: fixture("expected.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func floatRows(_ any: Any?) throws -> [[Float]] {
        let rows = try XCTUnwrap(any as? [[Double]])
        return rows.map { $0.map { Float($0) } }
    }

    func floatRow(_ any: Any?) throws -> [Float] {
        try XCTUnwrap(any as? [Double]).map { Float($0) }
    }

    /// Asserts that `body` throws an error whose description contains every fragment.
    func assertThrows(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error containing \(fragments)", file: file, line: line)
        } catch {
            let text = "\(error)"
            for f in fragments where !text.contains(f) {
                XCTFail("error '\(text)' does not contain '\(f)'", file: file, line: line)
            }
        }
    }

    /// Deterministic values with varied signs and magnitudes (a tiny LCG; no dependence on the code under test).
    func sampleRows(_ n: Int, _ h: Int, seed: UInt32) -> [[Float]] {
        var s = seed
        return (0 ..< n).map { _ in
            (0 ..< h).map { _ in
                s = s &* 1_664_525 &+ 1_013_904_223
                return (Float(s >> 8) / Float(1 << 24) - 0.5) * 8
            }
        }
    }

    func zeros(_ h: Int) -> [Float] { [Float](repeating: 0, count: h) }

    // MARK: Layer mapping, hand-computed

    func testLayerMappingHandComputed() throws {
        // direction.N is added to the output of block N, which is HF row N+1.
        XCTAssertEqual(VectorFiles.row(forControlDirection: 3), 4)
        XCTAssertEqual(VectorFiles.row(forControlDirection: 1), 2)
        XCTAssertEqual(VectorFiles.controlDirection(forRow: 4), 3)
        XCTAssertNil(VectorFiles.controlDirection(forRow: 0))
        // The method's worked example (Gemma-2-2b, 26 blocks): persona_vectors row 16 = output of block 15.
        let gemma = TraitVector(trait: "t", method: "m", rows: Array(repeating: [1], count: 27))
        XCTAssertEqual(gemma.hookPoint(row: 16)?.name, "blocks.15.hook_resid_post")
        XCTAssertEqual(VectorFiles.controlDirection(forRow: 16), 15)

        let v = TraitVector(trait: "t", method: "m", rows: Array(repeating: [1, 2], count: 7))  // L = 6
        XCTAssertEqual(v.hookPoint(row: 4)?.name, "blocks.3.hook_resid_post")
        XCTAssertEqual(v.hookPoint(row: 0)?.name, "hook_embed")
        XCTAssertEqual(v.hookPoint(row: 6)?.name, "ln_final.hook_normalized")
        XCTAssertEqual(v.hookPoint(row: 1)?.name, "blocks.0.hook_resid_post")
        XCTAssertNil(v.hookPoint(row: 7))

        XCTAssertEqual(VectorFiles.defaultControlVectorRows(numLayers: 6), [2, 3, 4, 5])
        XCTAssertEqual(VectorFiles.defaultControlVectorRows(numLayers: 2), [])
    }

    func testControlDirectionLandsOnHandComputedRow() throws {
        // One hand-written GGUF: direction.3 only, model of 5 blocks -> row 4 set, the other 5 rows zero.
        var w = GGUFWriter()
        w.set("general.architecture", .string("controlvector"))
        w.set("controlvector.model_hint", .string("llama"))
        w.set("controlvector.layer_count", .int32(5))
        let d: [Float] = [1, -2, 3.5, 0.25]
        var data = Data()
        for x in d { withUnsafeBytes(of: x.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        try w.addTensor(name: "direction.3", dtype: .f32, shape: [4], data: data)
        let url = tmp.appendingPathComponent("only3.gguf")
        try w.write(to: url)

        let vs = try VectorFiles.load(url)
        XCTAssertEqual(vs.count, 1)
        let v = try XCTUnwrap(vs.first)
        XCTAssertEqual(v.rows.count, 6)
        XCTAssertEqual(v.rows[4], d)
        for r in [0, 1, 2, 3, 5] { XCTAssertEqual(v.rows[r], zeros(4), "row \(r)") }
        XCTAssertEqual(v.hookPoint(row: 4)?.name, "blocks.3.hook_resid_post")
        XCTAssertEqual(v.trait, "only3")
        XCTAssertEqual(v.method, "controlvector")
        XCTAssertEqual(v.model, "llama")
    }

    // MARK: Our format

    /// Vectors of the same shape from another model load and score without error, so the CLI prints one note per
    /// other model they name; the model's own vectors, and vectors that name none, print nothing.
    func testOtherModelNotes() {
        func v(_ trait: String, _ model: String?) -> TraitVector {
            TraitVector(trait: trait, method: "response_avg", rows: [[1, 0], [0, 1]], model: model)
        }
        XCTAssertEqual(VectorFiles.otherModelNotes([v("evil", "SmolLM2-135M-Instruct.Q4_1"), v("refusal", nil)],
                                                   model: "smollm2-135m-instruct.q4_1"), [])
        let notes = VectorFiles.otherModelNotes([v("evil", "Qwen2.5-0.5B"), v("refusal", "Qwen2.5-0.5B"), v("evil", "Qwen2.5-0.5B"),
                                                 v("verbosity", "gemma-2-2b-it")], model: "SmolLM2-135M-Instruct.Q4_1")
        XCTAssertEqual(notes.count, 2)
        XCTAssertTrue(notes[0].hasPrefix("note: evil, refusal extracted from 'Qwen2.5-0.5B', the model is 'SmolLM2-135M-Instruct.Q4_1'"), notes[0])
        XCTAssertTrue(notes[1].hasPrefix("note: verbosity extracted from 'gemma-2-2b-it'"), notes[1])
    }

    func testOurFormatRoundTripIsExact() throws {
        var a = TraitVector(trait: "evil", method: "response_avg", rows: sampleRows(5, 16, seed: 7), recommendedRow: 3,
                            model: "google/gemma-2-2b-it", positiveMeaning: "more evil", samplesPositive: 87,
                            samplesNegative: 91, source: "extracted from trait_data_extract/evil.json")
        a.rows[2][5] = .leastNonzeroMagnitude      // subnormals survive
        a.rows[4][0] = -.greatestFiniteMagnitude
        let b = TraitVector(trait: "humorous", method: "prompt_last", rows: sampleRows(5, 16, seed: 99))
        let url = tmp.appendingPathComponent("v.safetensors")
        try VectorFiles.save([a, b], to: url)

        let back = try VectorFiles.load(url)
        XCTAssertEqual(back.count, 2)
        let a2 = try XCTUnwrap(back.first { $0.trait == "evil" })
        let b2 = try XCTUnwrap(back.first { $0.trait == "humorous" })
        XCTAssertEqual(a2.rows.map { $0.map(\.bitPattern) }, a.rows.map { $0.map(\.bitPattern) })
        XCTAssertEqual(b2.rows.map { $0.map(\.bitPattern) }, b.rows.map { $0.map(\.bitPattern) })
        XCTAssertEqual(a2.method, "response_avg")
        XCTAssertEqual(a2.recommendedRow, 3)
        XCTAssertEqual(a2.model, "google/gemma-2-2b-it")
        XCTAssertEqual(a2.positiveMeaning, "more evil")
        XCTAssertEqual(a2.samplesPositive, 87)
        XCTAssertEqual(a2.samplesNegative, 91)
        XCTAssertEqual(a2.source, "extracted from trait_data_extract/evil.json")
        XCTAssertEqual(b2.method, "prompt_last")
        XCTAssertNil(b2.recommendedRow)
        XCTAssertNil(b2.samplesPositive)

        // The raw file, read with the container reader: dtype, shape, metadata keys and the recorded convention.
        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(f.metadata["format"], "personascope.vectors/1")
        let conv = try XCTUnwrap(f.metadata["convention"])
        XCTAssertTrue(conv.contains("blocks.{l-1}.hook_resid_post"), conv)
        XCTAssertTrue(conv.contains("Row 0"), conv)
        let t = try XCTUnwrap(f.tensor("evil.response_avg"))
        XCTAssertEqual(t.dtype, .f32)
        XCTAssertEqual(t.shape, [5, 16])
        let meta = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(f.metadata["evil.response_avg"]).utf8))
            as? [String: Any])
        for key in ["model", "trait", "method", "samples_pos", "samples_neg", "norms", "recommended_row", "recommended_hook",
                    "positive_meaning", "source"] {
            XCTAssertNotNil(meta[key], key)
        }
        XCTAssertEqual(meta["recommended_hook"] as? String, "blocks.2.hook_resid_post")  // row 3 = output of block 2
        // Norms checked against a Double-precision computation.
        let norms = try XCTUnwrap(meta["norms"] as? [Double])
        XCTAssertEqual(norms.count, 5)
        for (r, row) in a.rows.enumerated() {
            let n = row.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertEqual(norms[r], n, accuracy: n * 1e-12, "row \(r)")
        }
        // The second vector's unknown fields are written as JSON null.
        let metaB = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(f.metadata["humorous.prompt_last"]).utf8))
            as? [String: Any])
        XCTAssertTrue(metaB["recommended_row"] is NSNull)
    }

    func testOurFormatWrittenByPythonSafetensors() throws {
        let exp = try XCTUnwrap(try expected()["python_written.safetensors"] as? [String: Any])
        let vs = try VectorFiles.load(fixture("python_written.safetensors"))
        XCTAssertEqual(vs.map(\.trait).sorted(), ["optimistic", "sycophantic"])
        let o = try XCTUnwrap(vs.first { $0.trait == "optimistic" })
        XCTAssertEqual(o.rows, try floatRows(exp["optimistic.response_avg"]))
        XCTAssertEqual(o.rows[2][1], 7.0 / 4)  // (r*3 + c)/4 at r=2, c=1
        XCTAssertEqual(o.method, "response_avg")
        XCTAssertEqual(o.recommendedRow, 2)
        XCTAssertEqual(o.model, "tiny/test")
        XCTAssertEqual(o.samplesPositive, 12)
        XCTAssertEqual(o.samplesNegative, 10)
        XCTAssertEqual(o.positiveMeaning, "more optimistic")
        // BF16 tensor, widened exactly as torch does.
        let s = try XCTUnwrap(vs.first { $0.trait == "sycophantic" })
        XCTAssertEqual(s.method, "prompt_avg")
        XCTAssertEqual(s.rows, try floatRows(exp["sycophantic.prompt_avg"]))
    }

    // MARK: persona_vectors .pt

    func testPersonaVectorsFileNames() {
        XCTAssertTrue(VectorFiles.personaVectorsName("evil_response_avg_diff.pt") == ("evil", "response_avg"))
        XCTAssertTrue(VectorFiles.personaVectorsName("sycophantic_prompt_last_diff.pt") == ("sycophantic", "prompt_last"))
        XCTAssertTrue(VectorFiles.personaVectorsName("apathetic_prompt_avg_diff.pt") == ("apathetic", "prompt_avg"))
        XCTAssertTrue(VectorFiles.personaVectorsName("my_trait_response_avg.pt") == ("my_trait", "response_avg"))
        XCTAssertTrue(VectorFiles.personaVectorsName("something.pt") == ("something", "unknown"))
        XCTAssertTrue(VectorFiles.personaVectorsName("_response_avg_diff.pt") == ("_response_avg", "unknown"))
    }

    func testPersonaVectorsPtFloat32() throws {
        let exp = try XCTUnwrap(try expected()["evil_response_avg_diff.pt"] as? [String: Any])
        let vs = try VectorFiles.load(fixture("evil_response_avg_diff.pt"))
        XCTAssertEqual(vs.count, 1)
        let v = try XCTUnwrap(vs.first)
        XCTAssertEqual(v.trait, "evil")
        XCTAssertEqual(v.method, "response_avg")
        XCTAssertEqual(v.rows.count, 4)
        XCTAssertEqual(v.hiddenSize, 8)
        XCTAssertEqual(v.rows, try floatRows(exp["rows"]))
        XCTAssertEqual(v.rows[2][4], 2.0)    // r + c/8 - 0.5 at r=2, c=4
        XCTAssertEqual(v.rows[0][0], -0.5)
        // numLayers is checked when given.
        XCTAssertEqual(try VectorFiles.load(fixture("evil_response_avg_diff.pt"), numLayers: 3).count, 1)
        assertThrows(["evil_response_avg_diff.pt", "4 rows", "5-block model needs 6"]) {
            _ = try VectorFiles.load(fixture("evil_response_avg_diff.pt"), numLayers: 5)
        }
    }

    func testPersonaVectorsPtBFloat16IsWidened() throws {
        let exp = try XCTUnwrap(try expected()["humorous_prompt_last_diff.pt"] as? [String: Any])
        let v = try XCTUnwrap(try VectorFiles.load(fixture("humorous_prompt_last_diff.pt")).first)
        XCTAssertEqual(v.trait, "humorous")
        XCTAssertEqual(v.method, "prompt_last")
        XCTAssertEqual(v.rows, try floatRows(exp["rows"]))
    }

    func testPtToOurFormatRoundTrip() throws {
        let v = try XCTUnwrap(try VectorFiles.load(fixture("evil_response_avg_diff.pt")).first)
        let url = tmp.appendingPathComponent("evil.safetensors")
        try VectorFiles.save([v], to: url)
        let back = try XCTUnwrap(try VectorFiles.load(url).first)
        XCTAssertEqual(back.rows, v.rows)
        XCTAssertEqual(back.trait, "evil")
        XCTAssertEqual(back.method, "response_avg")
    }

    // MARK: Control vectors

    func testControlVectorExportThenLoad() throws {
        let v = TraitVector(trait: "happy", method: "response_avg", rows: sampleRows(7, 8, seed: 3), recommendedRow: 3)  // L = 6
        let url = tmp.appendingPathComponent("happy.gguf")
        try VectorFiles.exportControlVector(v, modelHint: "llama", to: url)

        // Raw file: what llama.cpp reads.
        let g = try GGUFFile(url: url)
        XCTAssertEqual(g.architecture, "controlvector")
        XCTAssertEqual(g.metadata["controlvector.model_hint"]?.string, "llama")
        XCTAssertEqual(g.metadata["controlvector.layer_count"]?.int, 6)
        XCTAssertEqual(g.tensorNamesInFileOrder, ["direction.1", "direction.2", "direction.3", "direction.4"])
        let t = try XCTUnwrap(g.tensor("direction.3"))
        XCTAssertEqual(t.dtype, .f32)
        XCTAssertEqual(t.shape, [8])
        let d3 = (0 ..< 8).map { Float(bitPattern: UInt32(littleEndian: t.bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        XCTAssertEqual(d3, v.rows[4])   // direction.3 = row 4

        let back = try XCTUnwrap(try VectorFiles.load(url).first)
        XCTAssertEqual(back.rows.count, 7)
        for r in 0 ... 6 {
            XCTAssertEqual(back.rows[r], (2 ... 5).contains(r) ? v.rows[r] : zeros(8), "row \(r)")
        }
        XCTAssertEqual(back.trait, "happy")
        XCTAssertEqual(back.method, "response_avg")
        XCTAssertEqual(back.model, "llama")
        // Explicit numLayers agrees.
        XCTAssertEqual(try VectorFiles.load(url, numLayers: 6).first?.rows, back.rows)
    }

    func testControlVectorExportRowsAndCoef() throws {
        let v = TraitVector(trait: "calm", method: "prompt_avg", rows: sampleRows(7, 8, seed: 11))
        let url = tmp.appendingPathComponent("calm.gguf")
        try VectorFiles.exportControlVector(v, rows: [6, 3], coef: 2, modelHint: "qwen2", to: url)
        let g = try GGUFFile(url: url)
        XCTAssertEqual(g.tensorNamesInFileOrder, ["direction.2", "direction.5"])
        XCTAssertEqual(g.metadata["personascope.coef"], .float32(2))
        let back = try XCTUnwrap(try VectorFiles.load(url).first)
        for r in 0 ... 6 {
            XCTAssertEqual(back.rows[r], [3, 6].contains(r) ? v.rows[r].map { $0 * 2 } : zeros(8), "row \(r)")
        }
        XCTAssertTrue(back.source?.contains("row 6 holds direction.5") ?? false, back.source ?? "")
    }

    func testControlVectorFromCvectorGeneratorLayout() throws {
        // Written by python gguf as llama.cpp's cvector-generator does: n_layers = 5, direction.1...4, layer_count = 4.
        let exp = try XCTUnwrap(try expected()["cvgen_happy.gguf"] as? [String: Any])
        let dirs = try XCTUnwrap(exp["directions"] as? [String: Any])
        for numLayers in [nil, 5] as [Int?] {
            let v = try XCTUnwrap(try VectorFiles.load(fixture("cvgen_happy.gguf"), numLayers: numLayers).first)
            XCTAssertEqual(v.rows.count, 6)
            XCTAssertEqual(v.rows[0], zeros(8))
            XCTAssertEqual(v.rows[1], zeros(8))
            for n in 1 ... 4 { XCTAssertEqual(v.rows[n + 1], try floatRow(dirs[String(n)]), "direction.\(n)") }
            XCTAssertEqual(v.model, "llama")
            XCTAssertEqual(v.trait, "cvgen_happy")
        }
        assertThrows(["cvgen_happy.gguf", "direction.4", "3 blocks"]) {
            _ = try VectorFiles.load(fixture("cvgen_happy.gguf"), numLayers: 3)
        }
    }

    func testControlVectorFromRepengLayout() throws {
        // repeng: layer_count = number of directions (2) for direction.2 and direction.3 -> depth unknown.
        let exp = try XCTUnwrap(try expected()["repeng_calm.gguf"] as? [String: Any])
        let dirs = try XCTUnwrap(exp["directions"] as? [String: Any])
        assertThrows(["repeng_calm.gguf", "direction.3", "pass numLayers"]) {
            _ = try VectorFiles.load(fixture("repeng_calm.gguf"))
        }
        let v = try XCTUnwrap(try VectorFiles.load(fixture("repeng_calm.gguf"), numLayers: 5).first)
        XCTAssertEqual(v.rows.count, 6)
        XCTAssertEqual(v.rows[3], try floatRow(dirs["2"]))
        XCTAssertEqual(v.rows[4], try floatRow(dirs["3"]))  // stored F16, widened
        for r in [0, 1, 2, 5] { XCTAssertEqual(v.rows[r], zeros(8), "row \(r)") }
        XCTAssertEqual(v.model, "mistral")
    }

    func testControlVectorExportRefusesRowsWithoutADirection() throws {
        let v = TraitVector(trait: "x", method: "m", rows: sampleRows(5, 4, seed: 1))
        let url = tmp.appendingPathComponent("x.gguf")
        assertThrows(["row 0", "embeddings"]) { try VectorFiles.exportControlVector(v, rows: [0, 2], modelHint: "h", to: url) }
        assertThrows(["row 1", "direction.0"]) { try VectorFiles.exportControlVector(v, rows: [1], modelHint: "h", to: url) }
        assertThrows(["row 5", "outside"]) { try VectorFiles.exportControlVector(v, rows: [5], modelHint: "h", to: url) }
        assertThrows(["row 2", "twice"]) { try VectorFiles.exportControlVector(v, rows: [2, 2], modelHint: "h", to: url) }
        let shallow = TraitVector(trait: "y", method: "m", rows: sampleRows(3, 4, seed: 1))  // L = 2: no default rows
        assertThrows(["no rows to export"]) { try VectorFiles.exportControlVector(shallow, modelHint: "h", to: url) }
        assertThrows(["coef"]) { try VectorFiles.exportControlVector(v, coef: .nan, modelHint: "h", to: url) }
        var big = v
        big.rows[3][1] = 3e38
        assertThrows(["row 3", "overflows"]) { try VectorFiles.exportControlVector(big, coef: 10, modelHint: "h", to: url) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    // MARK: Directories

    func testDirectoryOfMixedFiles() throws {
        let dir = tmp.appendingPathComponent("vecs")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in ["evil_response_avg_diff.pt", "humorous_prompt_last_diff.pt", "cvgen_happy.gguf"] {
            try FileManager.default.copyItem(at: fixture(name), to: dir.appendingPathComponent(name))
        }
        let ours = TraitVector(trait: "calm", method: "response_avg", rows: sampleRows(6, 8, seed: 5))
        try VectorFiles.save([ours], to: dir.appendingPathComponent("calm.safetensors"))
        try Data("notes".utf8).write(to: dir.appendingPathComponent("README.txt"))

        let vs = try VectorFiles.load(dir)
        XCTAssertEqual(vs.map(\.trait).sorted(), ["calm", "cvgen_happy", "evil", "humorous"])
        // numLayers applies to every file: the .pt vectors (L = 3) do not fit a 5-block model.
        assertThrows(["evil_response_avg_diff.pt", "5-block model"]) { _ = try VectorFiles.load(dir, numLayers: 5) }

        // The same trait and method twice is ambiguous.
        try VectorFiles.save([TraitVector(trait: "evil", method: "response_avg", rows: sampleRows(4, 8, seed: 2))],
                             to: dir.appendingPathComponent("evil.safetensors"))
        assertThrows(["trait 'evil'", "evil.safetensors", "evil_response_avg_diff.pt"]) { _ = try VectorFiles.load(dir) }

        let empty = tmp.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        assertThrows(["empty", "no vector files"]) { _ = try VectorFiles.load(empty) }
    }

    // MARK: Bad files

    func testBadFilesGiveClearErrors() throws {
        assertThrows(["not_a_vector.gguf", "general.architecture is 'llama'"]) { _ = try VectorFiles.load(fixture("not_a_vector.gguf")) }
        assertThrows(["not_a_tensor.pt"]) { _ = try VectorFiles.load(fixture("not_a_tensor.pt")) }
        assertThrows(["nope.safetensors", "no such file"]) { _ = try VectorFiles.load(self.tmp.appendingPathComponent("nope.safetensors")) }

        let junk = tmp.appendingPathComponent("junk.bin")
        try Data("hello, this is not a vector file".utf8).write(to: junk)
        assertThrows(["junk.bin", "unknown vector file format"]) { _ = try VectorFiles.load(junk) }

        let legacy = tmp.appendingPathComponent("legacy.pt")
        try Data([0x80, 0x02, 0x8a, 0x0a]).write(to: legacy)
        assertThrows(["legacy.pt", "zip"]) { _ = try VectorFiles.load(legacy) }

        // A plain model-weights safetensors file is not ours.
        let plain = tmp.appendingPathComponent("plain.safetensors")
        try SafetensorsWriter.write([("w", .f32, [2, 2], Data(count: 16))], metadata: [:], to: plain)
        assertThrows(["plain.safetensors", "'format'"]) { _ = try VectorFiles.load(plain) }
        let future = tmp.appendingPathComponent("future.safetensors")
        try SafetensorsWriter.write([("a.b", .f32, [2, 2], Data(count: 16))], metadata: ["format": "personascope.vectors/9"], to: future)
        assertThrows(["future.safetensors", "personascope.vectors/9", "not supported"]) { _ = try VectorFiles.load(future) }

        // Wrong shape, wrong name, bad metadata.
        let ours = ["format": "personascope.vectors/1"]
        let oneD = tmp.appendingPathComponent("oned.safetensors")
        try SafetensorsWriter.write([("evil.response_avg", .f32, [8], Data(count: 32))], metadata: ours, to: oneD)
        assertThrows(["oned.safetensors", "trait 'evil'", "shape [8]", "[L+1, hidden]"]) { _ = try VectorFiles.load(oneD) }
        let noDot = tmp.appendingPathComponent("nodot.safetensors")
        try SafetensorsWriter.write([("evil", .f32, [2, 2], Data(count: 16))], metadata: ours, to: noDot)
        assertThrows(["nodot.safetensors", "'evil'", "<trait>.<method>"]) { _ = try VectorFiles.load(noDot) }
        let badMeta = tmp.appendingPathComponent("badmeta.safetensors")
        try SafetensorsWriter.write([("evil.m", .f32, [2, 2], Data(count: 16))],
                                    metadata: ours.merging(["evil.m": "{\"recommended_row\": 7}"]) { a, _ in a }, to: badMeta)
        assertThrows(["badmeta.safetensors", "recommended_row 7", "0...1"]) { _ = try VectorFiles.load(badMeta) }
        let badHook = tmp.appendingPathComponent("badhook.safetensors")
        try SafetensorsWriter.write([("evil.m", .f32, [4, 2], Data(count: 32))],
                                    metadata: ours.merging(["evil.m": "{\"recommended_row\": 2, \"recommended_hook\": \"blocks.2.hook_resid_post\"}"]) { a, _ in a },
                                    to: badHook)
        assertThrows(["badhook.safetensors", "blocks.2.hook_resid_post", "blocks.1.hook_resid_post"]) { _ = try VectorFiles.load(badHook) }
        let notJSON = tmp.appendingPathComponent("notjson.safetensors")
        try SafetensorsWriter.write([("evil.m", .f32, [2, 2], Data(count: 16))],
                                    metadata: ours.merging(["evil.m": "{oops"]) { a, _ in a }, to: notJSON)
        assertThrows(["notjson.safetensors", "'evil.m'", "JSON"]) { _ = try VectorFiles.load(notJSON) }

        // NaN / Inf: named by trait and row.
        var vals = [Float](repeating: 0.5, count: 12)   // [3, 4]
        vals[9] = .nan                                   // row 2, column 1
        var nanData = Data()
        for x in vals { withUnsafeBytes(of: x.bitPattern.littleEndian) { nanData.append(contentsOf: $0) } }
        let nanFile = tmp.appendingPathComponent("nan.safetensors")
        try SafetensorsWriter.write([("evil.response_avg", .f32, [3, 4], nanData)], metadata: ours, to: nanFile)
        assertThrows(["nan.safetensors", "trait 'evil'", "row 2", "nan"]) { _ = try VectorFiles.load(nanFile) }

        var w = GGUFWriter()
        w.set("general.architecture", .string("controlvector"))
        w.set("controlvector.layer_count", .int32(4))
        try w.addTensor(name: "direction.1", dtype: .f32, shape: [4], data: nanData.prefix(16))
        try w.addTensor(name: "direction.2", dtype: .f32, shape: [4], data: nanData.suffix(16))
        let nanGGUF = tmp.appendingPathComponent("nan.gguf")
        try w.write(to: nanGGUF)
        assertThrows(["nan.gguf", "direction.2", "nan"]) { _ = try VectorFiles.load(nanGGUF) }

        // Control vectors: stray tensors, mismatched widths, missing layer_count, quantised directions.
        func cv(_ name: String, _ build: (inout GGUFWriter) throws -> Void) throws -> URL {
            var g = GGUFWriter()
            g.set("general.architecture", .string("controlvector"))
            try build(&g)
            let u = tmp.appendingPathComponent(name)
            try g.write(to: u)
            return u
        }
        let stray = try cv("stray.gguf") { g in
            g.set("controlvector.layer_count", .int32(4))
            try g.addTensor(name: "output.weight", dtype: .f32, shape: [4], data: Data(count: 16))
        }
        assertThrows(["stray.gguf", "'output.weight'", "direction.N"]) { _ = try VectorFiles.load(stray) }
        let widths = try cv("widths.gguf") { g in
            g.set("controlvector.layer_count", .int32(4))
            try g.addTensor(name: "direction.1", dtype: .f32, shape: [4], data: Data(count: 16))
            try g.addTensor(name: "direction.2", dtype: .f32, shape: [2], data: Data(count: 8))
        }
        assertThrows(["widths.gguf", "direction.2", "2 values", "4"]) { _ = try VectorFiles.load(widths) }
        let noCount = try cv("nocount.gguf") { g in
            try g.addTensor(name: "direction.2", dtype: .f32, shape: [4], data: Data(count: 16))
        }
        assertThrows(["nocount.gguf", "layer_count is missing", "numLayers"]) { _ = try VectorFiles.load(noCount) }
        XCTAssertEqual(try VectorFiles.load(noCount, numLayers: 4).first?.rows.count, 5)
        let twoD = try cv("twod.gguf") { g in
            g.set("controlvector.layer_count", .int32(4))
            try g.addTensor(name: "direction.1", dtype: .f32, shape: [2, 4], data: Data(count: 32))
        }
        assertThrows(["twod.gguf", "direction.1", "one dimension"]) { _ = try VectorFiles.load(twoD) }
        let quant = try cv("quant.gguf") { g in
            g.set("controlvector.layer_count", .int32(4))
            try g.addTensor(name: "direction.1", dtype: .q8_0, shape: [32], data: Data(count: 34))
        }
        assertThrows(["quant.gguf", "direction.1", "q8_0"]) { _ = try VectorFiles.load(quant) }
        let deep = try cv("deep.gguf") { g in
            g.set("controlvector.layer_count", .int32(2_000_000_000))
            try g.addTensor(name: "direction.7", dtype: .f32, shape: [4], data: Data(count: 16))
        }
        assertThrows(["deep.gguf", "2000000000 blocks", "implausible"]) { _ = try VectorFiles.load(deep) }
        let empty = try cv("empty.gguf") { g in g.set("controlvector.layer_count", .int32(4)) }
        assertThrows(["empty.gguf", "no direction"]) { _ = try VectorFiles.load(empty) }

        // Truncated copies of every good fixture fail cleanly (never crash).
        for name in ["evil_response_avg_diff.pt", "cvgen_happy.gguf", "python_written.safetensors"] {
            let data = try Data(contentsOf: fixture(name))
            for cut in [1, 7, 9, data.count / 3, data.count / 2, data.count - 1] {
                let u = tmp.appendingPathComponent("cut-\(cut)-" + name)
                try data.prefix(cut).write(to: u)
                XCTAssertThrowsError(try VectorFiles.load(u), "\(name) cut at \(cut)")
            }
        }
        XCTAssertThrowsError(try VectorFiles.load(fixture("evil_response_avg_diff.pt"), numLayers: 0))
    }

    func testSaveRefusesBadVectors() throws {
        let url = tmp.appendingPathComponent("bad.safetensors")
        var v = TraitVector(trait: "evil", method: "response_avg", rows: sampleRows(4, 4, seed: 8))
        v.rows[2][3] = .infinity
        assertThrows(["trait 'evil'", "row 2", "inf"]) { try VectorFiles.save([v], to: url) }
        let ragged = TraitVector(trait: "evil", method: "m", rows: [[1, 2], [3]])
        assertThrows(["trait 'evil'", "row 1", "1 values"]) { try VectorFiles.save([ragged], to: url) }
        let one = TraitVector(trait: "evil", method: "m", rows: [[1, 2]])
        assertThrows(["trait 'evil'", "1 rows"]) { try VectorFiles.save([one], to: url) }
        let dotted = TraitVector(trait: "evil", method: "a.b", rows: sampleRows(2, 2, seed: 1))
        assertThrows(["method 'a.b'"]) { try VectorFiles.save([dotted], to: url) }
        let ok = TraitVector(trait: "evil", method: "m", rows: sampleRows(2, 2, seed: 1))
        assertThrows(["appears twice"]) { try VectorFiles.save([ok, ok], to: url) }
        var badRow = ok
        badRow.recommendedRow = 5
        assertThrows(["recommendedRow 5"]) { try VectorFiles.save([badRow], to: url) }
        assertThrows(["no vectors"]) { try VectorFiles.save([], to: url) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    func testHalfWidening() {
        // Hand-computed IEEE half values, through the conversion every vector reader uses.
        func half(_ h: UInt16) -> Float { withUnsafeBytes(of: h.littleEndian) { DType.f16.floats($0, count: 1)![0] } }
        XCTAssertEqual(half(0x3C00), 1)
        XCTAssertEqual(half(0xC000), -2)
        XCTAssertEqual(half(0x3555), 0.333251953125)
        XCTAssertEqual(half(0x0001), 0x1p-24)        // smallest subnormal
        XCTAssertEqual(half(0x7BFF), 65504)
        XCTAssertEqual(half(0x7C00), .infinity)
        XCTAssertTrue(half(0x7E00).isNaN)
        XCTAssertEqual(half(0x8000).sign, .minus)
        // unaligned input and a wrong byte count
        let bytes: [UInt8] = [0xFF, 0x00, 0x3C, 0x00, 0xC0]
        bytes.withUnsafeBytes { raw in
            XCTAssertEqual(DType.f16.floats(UnsafeRawBufferPointer(rebasing: raw[1...]), count: 2), [1, -2])
            XCTAssertNil(DType.f16.floats(UnsafeRawBufferPointer(rebasing: raw[1...]), count: 3))
        }
    }
}
