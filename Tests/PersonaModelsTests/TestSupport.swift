import Foundation
import PersonaFormats
import PersonaModels
import XCTest
@testable import PersonaTestSupport

/// Paths to committed fixtures and to the shared reference folder beside the repository.
enum TestPaths {
    static var fixtures: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }

    static var repoRoot: URL { Repository.root }
    static var shared: URL { get throws { try Repository.shared } }

    static var stories260K: URL { get throws { try shared.appendingPathComponent("models/stories260K/stories260K.gguf") } }
}


/// Native precision of a GGUF model against llama.cpp's own logits for the same ids (`<name>.llamacpp.safetensors`:
/// `logits_batch`, all ids in one batch, and `logits_step`, one id at a time): ours run both ways. Every position must
/// be within f32 noise of llama.cpp except at most one per path (an activation rounded to the other side of a half:
/// ours is ggml's reference rounding, llama.cpp's x86 code rounds its own way), and at least `separation` (100) times
/// closer to llama.cpp than `f32Result` (the same weights computed in f32) is. Where llama.cpp's two paths disagree
/// with each other beyond noise, ours must be within noise of one of them there. (f16 activations, 2^-11 relative
/// steps instead of int8's 2^-7, move a small model's logits ~50x less: F16 asks for 10.)
func assertNativeMatchesLlamaCpp(_ name: String, model: URL, ids: [Int], llamaCpp: URL, f32Result: [Float],
                                 separation: Float = 100) throws {
    let lc = try SafetensorsFile(url: llamaCpp)
    func values(_ t: String) -> [Float] {
        let x = lc.tensor(t)!
        return Array(UnsafeBufferPointer(start: x.data.assumingMemoryBound(to: Float.self), count: x.elementCount))
    }
    let batchRef = values("logits_batch"), stepRef = values("logits_step")
    let vocab = batchRef.count / ids.count
    let net = try ModelLoader.loadNetwork(path: model.path)
    net.precision = .native
    let batch = Array(try net.forward(ids, cache: net.makeCache(), logits: .all))
    let cache = net.makeCache()
    var step: [Float] = []
    for id in ids { step += Array(try net.forward([id], cache: cache, logits: .last)) }
    let noise = 2e-5 * max(1, batchRef.map(abs).max()!)
    let f32Distance = maxAbsDiff(f32Result, batchRef)
    XCTAssertGreaterThan(f32Distance, separation * noise, "\(name): the f32 result should be far from llama.cpp's, or this test shows nothing")
    func row(_ x: [Float], _ p: Int) -> [Float] { Array(x[p * vocab ..< (p + 1) * vocab]) }
    for (path, ours, ref, other) in [("prompt at once", batch, batchRef, stepRef), ("token by token", step, stepRef, batchRef)] {
        XCTAssertEqual(ours.count, ref.count, "\(name) \(path)")
        guard ours.count == ref.count else { continue }
        let perPosition = (0..<ids.count).map { p in maxAbsDiff(row(ours, p), row(ref, p)) }
        let flipped = perPosition.indices.filter { perPosition[$0] > noise }
        XCTAssertLessThanOrEqual(flipped.count, 1, "\(name) \(path): positions beyond f32 noise \(noise): \(flipped.map { "\($0): \(perPosition[$0])" })")
        for p in perPosition.indices {
            if maxAbsDiff(row(ref, p), row(other, p)) > noise {   // llama.cpp disagrees with itself here
                XCTAssertLessThanOrEqual(min(perPosition[p], maxAbsDiff(row(ours, p), row(other, p))), noise, "\(name) \(path) position \(p): neither llama.cpp path")
                continue
            }
            XCTAssertLessThanOrEqual(perPosition[p], f32Distance / separation, "\(name) \(path) position \(p)")
        }
    }
}
