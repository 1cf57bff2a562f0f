// libFuzzer target: GGUF container parsing, then the GGUF tokenizer when the metadata holds one.
// Built by Fuzz/libfuzzer/build.sh; every input must parse or throw, never crash or read out of bounds (ASan).
import Foundation
@testable import PersonaFormats
@testable import PersonaTokenizers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let g = try? GGUFFile(file: MappedFile(url: URL(fileURLWithPath: "/fuzz/input.gguf"), contents: bytes)) else { return 0 }
    for name in g.tensorNames { _ = g.tensor(name)?.byteCount }
    if g.metadata["tokenizer.ggml.tokens"] != nil, let tok = try? GGUFTokenizer.build(g.metadata) {
        let ids = tok.encode("Hello world! héllo 日本 🚀", addSpecialTokens: true)
        _ = tok.decode(ids + [-1, Int.max], skipSpecialTokens: false)
    }
    return 0
}
