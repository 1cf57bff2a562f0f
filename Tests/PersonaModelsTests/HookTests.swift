import Foundation
import PersonaModels
import XCTest

final class HookTests: XCTestCase {
    func model() throws -> TransformerModel {
        try ModelLoader.loadNetwork(path: TestPaths.fixtures.appendingPathComponent("llama2").path)
    }

    func testHookNamesRoundTrip() {
        let points: [HookPoint] = [.embed, .residPre(0), .attnOut(3), .residMid(2), .mlpOut(1), .residPost(11), .lnFinal]
        for p in points { XCTAssertEqual(HookPoint(name: p.name), p) }
        XCTAssertEqual(HookPoint.residPost(12).name, "blocks.12.hook_resid_post")
        XCTAssertNil(HookPoint(name: "blocks.x.hook_resid_post"))
        XCTAssertEqual(HookPoint.hiddenStateRow(0, numLayers: 4), .embed)
        XCTAssertEqual(HookPoint.hiddenStateRow(3, numLayers: 4), .residPost(2))
        XCTAssertEqual(HookPoint.hiddenStateRow(4, numLayers: 4), .lnFinal)
        XCTAssertEqual(HookPoint.residPre(3).hiddenStateRow(numLayers: 4), 3)
        XCTAssertNil(HookPoint.hiddenStateRow(5, numLayers: 4))
    }

    func testResidPostEqualsNextResidPre() throws {
        let m = try model()
        let a = CaptureBuffer(), b = CaptureBuffer()
        let hooks = HookSet([Intervention(.residPost(0), .capture(a)), Intervention(.residPre(1), .capture(b))])
        try m.forward([1, 5, 9, 13], cache: m.makeCache(capacity: 4), hooks: hooks, logits: .none)
        XCTAssertEqual(a.values, b.values)
        XCTAssertEqual(a.positions, [0, 1, 2, 3])
    }

    func testAddAndAblateAtSelectedPositions() throws {
        let m = try model()
        let D = m.config.hiddenSize
        let v = (0..<D).map { Float($0 % 7) - 3 }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let before = CaptureBuffer(), after = CaptureBuffer()
        let ids = [1, 5, 9, 13, 17]
        try m.forward(ids, cache: m.makeCache(capacity: 5), hooks: HookSet([Intervention(.residPost(0), .capture(before))]), logits: .none)
        let steer = HookSet([Intervention(.residPost(0), positions: .range(1..<3), .add(vector: v, coef: 2)),
                             Intervention(.residPost(0), .capture(after))])
        try m.forward(ids, cache: m.makeCache(capacity: 5), hooks: steer, logits: .none)
        for t in 0..<ids.count {
            let proj0 = zip(before.row(t), v).reduce(Float(0)) { $0 + $1.0 * $1.1 } / norm
            let proj1 = zip(after.row(t), v).reduce(Float(0)) { $0 + $1.0 * $1.1 } / norm
            let expected: Float = (1..<3).contains(t) ? 2 * norm : 0
            XCTAssertEqual(proj1 - proj0, expected, accuracy: 1e-3, "position \(t)")
        }
        let ablated = CaptureBuffer()
        try m.forward(ids, cache: m.makeCache(capacity: 5),
                      hooks: HookSet([Intervention(.residPost(0), .ablate(direction: v)), Intervention(.residPost(0), .capture(ablated))]),
                      logits: .none)
        for t in 0..<ids.count {
            XCTAssertEqual(zip(ablated.row(t), v).reduce(Float(0)) { $0 + $1.0 * $1.1 }, 0, accuracy: 1e-3)
        }
    }

    func testReplaceAtAPositionAndItsEffectDownstream() throws {
        let m = try model()
        let D = m.config.hiddenSize
        let v = (0..<D).map { Float($0) / Float(D) }
        let ids = [1, 5, 9, 13]
        let seen = CaptureBuffer(), next = CaptureBuffer(), base = CaptureBuffer()
        try m.forward(ids, cache: m.makeCache(capacity: 4), hooks: HookSet([Intervention(.residPre(1), .capture(base))]), logits: .none)
        try m.forward(ids, cache: m.makeCache(capacity: 4),
                      hooks: HookSet([Intervention(.residPost(0), positions: .range(2..<3), .replace(vector: v)),
                                      Intervention(.residPost(0), .capture(seen)), Intervention(.residPre(1), .capture(next))]),
                      logits: .none)
        XCTAssertEqual(seen.row(2), v)
        XCTAssertEqual(next.row(2), v, "resid_post(0) is resid_pre(1)")
        XCTAssertEqual(next.row(1), base.row(1), "other positions untouched")
        XCTAssertNotEqual(next.row(2), base.row(2))
    }

    func testEmptyHooksChangeNothing() throws {
        let m = try model()
        let ids = [1, 5, 9, 13]
        let a = Array(try m.forward(ids, cache: m.makeCache(capacity: 4), logits: .all))
        let noop = HookSet([Intervention(.residPost(0), .capture(CaptureBuffer()))])
        let b = Array(try m.forward(ids, cache: m.makeCache(capacity: 4), hooks: noop, logits: .all))
        XCTAssertEqual(a, b)
    }

    func testContextOverflowIsAClearError() throws {
        let m = try model()
        let cache = m.makeCache(capacity: 2)
        XCTAssertThrowsError(try m.forward([1, 2, 3], cache: cache)) { e in
            XCTAssertTrue("\(e)".contains("context length"), "\(e)")
        }
        XCTAssertThrowsError(try m.forward([m.config.vocabSize], cache: m.makeCache(capacity: 2))) { e in
            XCTAssertTrue("\(e)".contains("outside the vocabulary"), "\(e)")
        }
    }
}
