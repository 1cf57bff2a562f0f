// libFuzzer target: safetensors header parsing and bounds checks (Fuzz/libfuzzer/build.sh).
import Foundation
@testable import PersonaFormats

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let f = try? SafetensorsFile(file: MappedFile(url: URL(fileURLWithPath: "/fuzz/input.safetensors"), contents: bytes)) else { return 0 }
    for name in f.tensorNames { if let t = f.tensor(name), t.byteCount > 0 { _ = t.data.load(fromByteOffset: t.byteCount - 1, as: UInt8.self) } }
    return 0
}
