import CPersonaKernels
import Foundation
import XCTest

/// pk_softmax_weights (softmax.c), the sampler's and log-probabilities' weights: each weight against exp in Double,
/// every SIMD level bit for bit against the portable code, the min-p cut, the sum, NaN.
final class SoftmaxWeightsTests: XCTestCase {
    /// Logits like a vocabulary's: a spread of values, exact ties with the maximum, and a tail far below it
    /// (weights that underflow to 0 and ones just above and below the cut-off at e^-87.34).
    static func logits(_ n: Int, rng: inout TestRNG) -> [Float] {
        var x = (0..<n).map { _ in rng.normal() * 6 }
        if n > 0 { x[n / 2] = 30 }
        if n > 3 { x[1] = 30 }
        for i in stride(from: 2, to: n, by: 9) { x[i] = 30 - 87.3 - rng.uniform() * 0.1 }   // around the cut-off
        for i in stride(from: 5, to: n, by: 13) { x[i] = -200 }
        return x
    }

    /// The f32 argument as the kernel forms it, and e^argument in Double.
    static func exact(_ v: Float, _ shift: Float, _ t: Float) -> (Float, Double) {
        let x = (v - shift) / t
        return (x, Foundation.exp(Double(x)))
    }

    func testWeightsAreExpWithinTwoUlp() {
        // Cephes' single-precision exp polynomial (about 1 ulp) after an exact-ish reduction x - k ln2 in two
        // fused steps: 2 ulp bounds what that leaves, over the whole range of normal results.
        var rng = TestRNG(5)
        var worst = 0.0
        for t: Float in [1, 0.7, 1.3] {
            let x = Self.logits(4099, rng: &rng) + (0..<2000).map { -Float($0) * 0.0436 }   // every sub-range of [-87.2, 0]
            for v in x {
                let (arg, want) = Self.exact(v, 30, t)
                let got = pk_softmax_weight(v, 30, t)
                if arg < -87.3365447505531 {
                    XCTAssertEqual(got, 0, "x \(arg): below the normal range the weight is 0")
                    continue
                }
                guard want >= Double(Float.leastNormalMagnitude) else { continue }   // subnormal results: no ulp
                let ulp = Double(Float(want).ulp)
                let err = abs(Double(got) - want) / ulp
                worst = max(worst, err)
                XCTAssertLessThanOrEqual(err, 2, "x \(arg) t \(t): \(got) vs \(want)")
            }
        }
        XCTAssertGreaterThan(worst, 0, "the polynomial is not correctly rounded everywhere: the test must see it")
        XCTAssertEqual(pk_softmax_weight(30, 30, 1), 1, "the maximum weighs exactly 1")
    }

    func testEveryLevelGivesTheSameWeightsAndSum() {
        var rng = TestRNG(9)
        for n in [0, 1, 3, 4, 7, 8, 15, 16, 17, 33, 1000, 49155] {
            let x = Self.logits(n, rng: &rng)
            for (t, cut) in [(Float(1), Float(0)), (0.7, 0), (1, 0.05), (1.2, 1e-30)] {
                var want = [Float](repeating: 0, count: n)
                for i in 0..<n { want[i] = pk_softmax_weight(x[i], 30, t); if want[i] < cut { want[i] = 0 } }
                let wantSum = want.reduce(0.0) { $0 + Double($1) }
                SIMDLevels.each { level in
                    var got = [Float](repeating: .nan, count: n + 1)   // one past the end: must stay untouched
                    let sum = pk_softmax_weights(x, Int64(n), 30, t, cut, &got)
                    let noOut = pk_softmax_weights(x, Int64(n), 30, t, cut, nil)
                    let label = "\(level) n \(n) t \(t) cut \(cut)"
                    if let i = (0..<n).first(where: { got[$0].bitPattern != want[$0].bitPattern }) {
                        XCTFail("\(label): weight \(i) of x \(x[i]) is \(got[i]), the portable code's \(want[i])")
                    }
                    XCTAssertTrue(got[n].isNaN, "\(label): wrote past the end")
                    // only the order of the double sum may differ: n roundings of at most 2^-53 of the running sum
                    XCTAssertLessThanOrEqual(abs(sum - wantSum), Double(n + 1) * 0x1p-53 * wantSum, label)
                    XCTAssertEqual(sum, noOut, "\(label): the sum without out")
                    if cut > 0 { XCTAssertFalse(got.prefix(n).contains { $0 > 0 && $0 < cut }, label) }
                }
            }
        }
    }

    func testNaNStaysNaNAtEveryLevel() {
        var x = [Float](repeating: 0, count: 37)
        x[3] = .nan; x[20] = .nan; x[36] = .nan
        SIMDLevels.each { level in
            var out = [Float](repeating: 0, count: 37)
            let sum = pk_softmax_weights(x, 37, 0, 1, 0, &out)
            for i in 0..<37 { XCTAssertEqual(out[i].isNaN, x[i].isNaN, "\(level) \(i)") }
            XCTAssertTrue(sum.isNaN, level)
        }
    }
}
