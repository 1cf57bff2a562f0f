import Foundation
import XCTest
@testable import PersonaTestSupport

/// `persona convert --to gguf --quantize TYPE` through the binary on the real SmolLM2 file: the file llama.cpp's
/// quantizer writes from the same input (`--allow-requantize`; SHA-256 recorded by Scripts/make_convert_fixtures.py),
/// and a file the other commands then run.
final class ConvertQuantizeCLITests: BinaryTestCase {
    override class var folderPrefix: String { "quantize" }

    func sha256(_ url: URL) throws -> String {
        let r = try Subprocess.run(URL(fileURLWithPath: "/usr/bin/env"), ["sha256sum", url.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        return String(r.stdout.prefix(64))
    }

    func testSmolLM2RequantisedEqualsLlamaQuantizeAndRuns() throws {
        let model = try Repository.smolLM2
        let fixture = Repository.root.appendingPathComponent("Tests/PersonaFormatsTests/Fixtures/quantize/llama_quantize.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as? [String: Any])
        let want = try XCTUnwrap(json["smollm2_requantized"] as? [String: String])
        for type in ["Q8_0", "Q4_0", "Q5_1", "Q6_K", "Q4_K_M", "Q5_K_M", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_XS", "F16", "BF16"] {
            let out = dir.appendingPathComponent("smollm2-\(type).gguf")
            let r = try persona(["convert", model.path, "--to", "gguf", "--quantize", type.lowercased(), "--out", out.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("wrote \(out.path): \(type)"), r.stderr)
            XCTAssertEqual(try sha256(out), want[type], "\(type): not the file llama-quantize writes")
        }
        // The Q8_0 file is a model like any other: chat generation with its own tokenizer and template.
        let q8 = dir.appendingPathComponent("smollm2-Q8_0.gguf").path
        let g = try persona(["generate", "--model", q8, "--prompt", "What is the capital of France?", "--max-tokens", "12", "--temperature", "0"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stdout.contains("Paris"), g.stdout)
    }

    func testBadQuantizeArgumentsAreNamed() throws {
        let model = try Repository.stories260K
        let bad = try persona(["convert", model.path, "--to", "gguf", "--quantize", "iq2_xxs", "--out", dir.appendingPathComponent("x.gguf").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--quantize must be one of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS"), bad.stderr)
        // a check made while the command runs points at this command's help, not the root usage (Persona.main)
        XCTAssertEqual(bad.status, 64)
        XCTAssertTrue(bad.stderr.contains("See 'persona convert --help'"), bad.stderr)
        XCTAssertFalse(bad.stderr.contains("persona <subcommand>"), bad.stderr)
        let pure = try persona(["convert", model.path, "--to", "gguf", "--pure", "--out", dir.appendingPathComponent("y.gguf").path])
        XCTAssertNotEqual(pure.status, 0)
        XCTAssertTrue(pure.stderr.contains("--pure goes with --quantize"), pure.stderr)
        // a GGUF re-exported without --quantize would lose its tokenizer and template: refused, nothing written
        let again = dir.appendingPathComponent("again.gguf")
        let plain = try persona(["convert", model.path, "--to", "gguf", "--out", again.path])
        XCTAssertNotEqual(plain.status, 0)
        XCTAssertTrue(plain.stderr.contains("is a GGUF already: --to gguf needs --quantize TYPE"), plain.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: again.path))
        // stories260K's rows (64 wide) are whole q4_0 blocks but not Q6_K blocks: Q6_K falls back to Q8_0 as llama.cpp does
        let q6 = try persona(["convert", model.path, "--to", "gguf", "--quantize", "Q6_K", "--out", dir.appendingPathComponent("s.gguf").path])
        XCTAssertEqual(q6.status, 0, q6.stderr)
        XCTAssertTrue(q6.stderr.contains("Q8_0"), q6.stderr)
    }

    /// A model folder's GGUF carries its tokenizer and chat template (tokenizer.ggml.*, as llama.cpp's converter
    /// writes them): the binary tokenizes a chat-formatted text the same from the folder and from the file. A
    /// tokenizer a GGUF cannot describe is left out with a warning naming why; the weights are still written.
    func testModelFolderKeepsItsTokenizer() throws {
        let fixtures = Repository.root.appendingPathComponent("Tests/PersonaModelsTests/Fixtures")
        let text = "<|im_start|>user\nIt's 2024: café, 12345 tokens\t\tand  spaces!<|im_end|>\n"
        for arch in ["qwen2", "llama"] {
            let folder = fixtures.appendingPathComponent(arch).path
            let out = dir.appendingPathComponent("\(arch)-q8_0.gguf")
            let r = try persona(["convert", folder, "--to", "gguf", "--quantize", "Q8_0", "--out", out.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertFalse(r.stderr.contains("warning"), r.stderr)
            let a = try persona(["tokenize", "--model", folder, "--text", text, "--add-special"])
            let b = try persona(["tokenize", "--model", out.path, "--text", text, "--add-special"])
            XCTAssertEqual(a.status, 0, a.stderr)
            XCTAssertEqual(b.status, 0, b.stderr)
            XCTAssertEqual(a.stdout, b.stdout, "\(arch): the GGUF tokenizes differently from its folder")
            XCTAssertGreaterThan(a.stdout.count, 20)
        }
        // a Unigram tokenizer.json: weights written, tokenizer left out, said so
        let spm = dir.appendingPathComponent("unigram-folder")
        try FileManager.default.createDirectory(at: spm, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent("llama/\(f)"), to: spm.appendingPathComponent(f))
        }
        try FileManager.default.copyItem(at: Repository.root.appendingPathComponent("Tests/PersonaTokenizersTests/Fixtures/unigram/tokenizer.json"),
                                         to: spm.appendingPathComponent("tokenizer.json"))
        let out = dir.appendingPathComponent("spm.gguf")
        let r = try persona(["convert", spm.path, "--to", "gguf", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("warning: tokenizer not embedded") && r.stderr.contains("not BPE"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.path))
    }
}
