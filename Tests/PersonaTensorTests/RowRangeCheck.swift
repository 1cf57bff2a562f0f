import XCTest

/// Runs a row-range matrix product over all rows and over an odd sub-range (as a pool thread gets one), into an
/// output of `T` rows of `ldy` floats pre-filled with a sentinel. Entries outside the range must stay untouched;
/// entries inside must be within `expect(t, r).tolerance` of `expect(t, r).want`. Reports the first failure only.
func checkRowRanges(rows: Int, T: Int, ldy: Int, label: String,
                    multiply: (_ r0: Int, _ r1: Int, _ y: inout [Float]) -> Void,
                    expect: (_ t: Int, _ r: Int) -> (want: Double, tolerance: Double)) {
    for (r0, r1) in [(0, rows), (min(3, rows), max(min(3, rows), rows - 2))] {
        let sentinel: Float = -12345
        var y = [Float](repeating: sentinel, count: T * ldy)
        multiply(r0, r1, &y)
        for t in 0..<T {
            for r in 0..<ldy {
                let got = y[t * ldy + r]
                guard r >= r0 && r < r1 else {
                    if got != sentinel { XCTFail("\(label): wrote outside rows \(r0)..<\(r1) at t \(t) r \(r)"); return }
                    continue
                }
                let (w, tol) = expect(t, r)
                if !(abs(Double(got) - w) <= tol) {
                    XCTFail("\(label) T \(T) [\(r0),\(r1)) t \(t) r \(r): \(got) vs \(w) (tol \(tol))")
                    return
                }
            }
        }
    }
}
