// libFuzzer target: tokenizer.json (JSON parser, pipeline builder), then encode/decode with what loaded
// (Fuzz/libfuzzer/build.sh).
import Foundation
@testable import PersonaTokenizers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let d = Data(bytes: data, count: size)
    guard let v = try? JSONValue.parse(d), let root = try? JSONObject(v, path: "tokenizer.json"),
          let tok = try? HFTokenizerJSON.build(root, bosToken: "<s>", eosTokens: ["</s>"], extraBosId: nil, extraEosIds: [], bosOverride: nil)
    else { return 0 }
    let ids = tok.encode("Hello world! 123 héllo 日本 🚀 <s>\n\t x", addSpecialTokens: true)
    _ = tok.decode(ids + [-1, Int.max], skipSpecialTokens: true)
    return 0
}
