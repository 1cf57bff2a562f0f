import CPersonaKernels
import Foundation
import PersonaTensor
import XCTest

final class ThreadPoolTests: XCTestCase {
    /// Every index runs exactly once, over many back-to-back jobs of different sizes (workers crossing jobs).
    func testEveryIndexOnceAcrossManyJobs() {
        let pool = ThreadPool(threads: 3)
        XCTAssertEqual(pool.threads, 3)
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: 1000)
        defer { counts.deallocate() }
        for job in 0..<2000 {
            let n = [1, 2, 3, 7, 64, 1000][job % 6]
            counts.initialize(repeating: 0, count: n)
            pool.parallelFor(n) { i in
                // plain increment is fine: each index must be handed to exactly one thread
                counts[i] += 1
            }
            for i in 0..<n where counts[i] != 1 { XCTFail("job \(job): index \(i) ran \(counts[i]) times"); return }
        }
    }

    /// A parallelFor inside a task, and two threads sharing one pool, both complete (serially) without deadlock.
    func testNestedAndConcurrentCalls() {
        let pool = ThreadPool(threads: 2)
        let total = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        defer { total.deallocate() }
        total.initialize(repeating: 0, count: 8)
        pool.parallelFor(8) { i in
            var s = 0
            pool.parallelFor(10) { j in s += j }   // nested: runs on this thread
            total[i] = s
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: total, count: 8)), Array(repeating: 45, count: 8))

        let group = DispatchGroup()
        final class Sums: @unchecked Sendable { var v = [0, 0] }
        let sums = Sums()
        for k in 0..<2 {
            DispatchQueue.global().async(group: group) {
                for _ in 0..<200 {
                    let part = UnsafeMutablePointer<Int>.allocate(capacity: 16)
                    part.initialize(repeating: 0, count: 16)
                    pool.parallelFor(16) { i in part[i] = i }
                    sums.v[k] += (0..<16).reduce(0) { $0 + part[$1] }
                    part.deallocate()
                }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(sums.v, [200 * 120, 200 * 120])
    }

    /// Ops.matmul over a pool (chunked rows) against a Double reference, T = 1 and a batch.
    func testMatmulOverPool() {
        var rng = TestRNG(9)
        let pool = ThreadPool(threads: 3)
        for (rows, cols, T) in [(1000, 96, 1), (333, 64, 5), (7, 32, 2)] {
            let v = (0..<(rows * cols)).map { _ in rng.normal() }
            let x = (0..<(T * cols)).map { _ in rng.normal() }
            for dt in [DType.f32, .bf16, .q8_0] {
                let w = WeightMatrix.from(v, rows: rows, cols: cols, dtype: dt)
                let deq = w.toFloatArray()
                var y = [Float](repeating: .nan, count: T * rows)
                x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                    Ops.matmul(w, xb.baseAddress!, T: T, yb.baseAddress!, pool: pool)
                } }
                for t in 0..<T {
                    for r in 0..<rows {
                        var exact = 0.0, size: Float = 0
                        for c in 0..<cols { exact += Double(deq[r * cols + c]) * Double(x[t * cols + c]); size += abs(deq[r * cols + c] * x[t * cols + c]) }
                        let tol = Float(cols + 4) * Float.ulpOfOne / 2 * size
                        if !(abs(Double(y[t * rows + r]) - exact) <= Double(tol)) {
                            XCTFail("\(dt) rows \(rows) T \(T): y[\(t),\(r)] = \(y[t * rows + r]) vs \(exact)"); return
                        }
                    }
                }
            }
        }
    }
}

private let f32 = Int32(PK_F32), f16 = Int32(PK_F16)

final class AttentionKernelTests: XCTestCase {
    /// Softmax attention in Double: the query against rows j < n of K / V at columns [column, column + hd).
    static func naive(_ q: ArraySlice<Float>, _ K: [Float], _ V: [Float], ld: Int, column: Int, n: Int, hd: Int,
                      scale: Float, cap: Float) -> [Double] {
        let q = Array(q)
        var s = (0..<n).map { j -> Double in
            var d = 0.0
            for i in 0..<hd { d += Double(q[i]) * Double(K[j * ld + column + i]) }
            d *= Double(scale)
            return cap > 0 ? Foundation.tanh(d / Double(cap)) * Double(cap) : d
        }
        let m = s.max()!
        s = s.map { Foundation.exp($0 - m) }
        let z = s.reduce(0, +)
        return (0..<hd).map { i in (0..<n).reduce(0.0) { $0 + s[$1] / z * Double(V[$1 * ld + column + i]) } }
    }

    /// pk_attention_head against a Double softmax-attention written out here, with and without soft-capping.
    func testAttentionHeadMatchesNaive() {
        var rng = TestRNG(10)
        SIMDLevels.each { level in
            for (n, hd, cap) in [(1, 64, Float(0)), (5, 67, 0), (130, 128, 0), (17, 64, 50), (16, 64, 0), (300, 256, 0), (33, 256, 30)] {
                let ld = hd + 3
                let q = (0..<hd).map { _ in rng.normal() }
                let K = (0..<(n * ld)).map { _ in rng.normal() }, V = (0..<(n * ld)).map { _ in rng.normal() }
                let scale = 1 / Float(hd).squareRoot()
                var scores = [Float](repeating: 0, count: n), out = [Float](repeating: .nan, count: hd)
                pk_attention_head(q, K, Int64(ld), V, Int64(ld), f32, Int64(n), Int64(hd), scale, cap, &scores, &out)
                let want = Self.naive(q[...], K, V, ld: ld, column: 0, n: n, hd: hd, scale: scale, cap: cap)
                for i in 0..<hd {
                    // scores carry f32 rounding of length-hd dots (|q.k| <~ 4 sqrt(hd)) through exp: ~1e-5 relative
                    XCTAssertEqual(Double(out[i]), want[i], accuracy: 2e-5 * (1 + abs(want[i])) * Double(hd).squareRoot(), "\(level) n \(n) hd \(hd) i \(i)")
                }
            }
        }
    }

    /// Decode attention by position chunk (pk_attention_partial over each chunk, then pk_attention_merge) against
    /// a Double softmax-attention per head written out here: grouped heads reading their KV head's columns of
    /// shared rows, chunkings that split a 16-position tile or leave a chunk of one, and soft-capping.
    func testChunkedAttentionMatchesNaive() {
        var rng = TestRNG(12)
        SIMDLevels.each { level in
            for (n, hd, H, group, chunks, cap) in [(1, 64, 3, 3, 1, Float(0)), (300, 64, 9, 3, 4, 0), (47, 128, 4, 2, 3, 0),
                                                  (100, 8, 8, 1, 2, 0), (65, 256, 2, 2, 2, 40), (33, 64, 7, 7, 33, 0)] {
                let kvDim = H / group * hd, ld = kvDim
                let q = (0..<(H * hd)).map { _ in rng.normal() }
                let K = (0..<(n * ld)).map { _ in rng.normal() }, V = (0..<(n * ld)).map { _ in rng.normal() }
                let scale = 1 / Float(hd).squareRoot()
                var scores = [Float](repeating: .nan, count: H * n)
                var m = [Float](repeating: .nan, count: chunks * H), l = m
                var o = [Float](repeating: .nan, count: chunks * H * hd), out = [Float](repeating: .nan, count: H * hd)
                let per = (n + chunks - 1) / chunks
                for c in 0..<chunks {
                    let a = min(n, c * per), b = min(n, a + per)
                    guard b > a else { XCTFail("empty chunk in the test's own setup"); return }
                    K.withUnsafeBufferPointer { kp in V.withUnsafeBufferPointer { vp in scores.withUnsafeMutableBufferPointer { sp in
                        m.withUnsafeMutableBufferPointer { mp in l.withUnsafeMutableBufferPointer { lp in o.withUnsafeMutableBufferPointer { op in
                            pk_attention_partial(q, Int64(H), Int64(group), kp.baseAddress! + a * ld, vp.baseAddress! + a * ld, Int64(ld),
                                                 f32, Int64(b - a), Int64(hd), scale, cap, sp.baseAddress! + a, Int64(n),
                                                 mp.baseAddress! + c * H, lp.baseAddress! + c * H, op.baseAddress! + c * H * hd)
                        } } }
                    } } }
                }
                pk_attention_merge(Int64(chunks), Int64(H), Int64(hd), m, l, o, &out)
                for h in 0..<H {
                    let want = Self.naive(q[(h * hd)..<((h + 1) * hd)], K, V, ld: ld, column: (h / group) * hd, n: n, hd: hd, scale: scale, cap: cap)
                    for i in 0..<hd {
                        let y = want[i]
                        // as testAttentionHeadMatchesNaive: f32 dots of length hd through exp, ~1e-5 relative
                        XCTAssertEqual(Double(out[h * hd + i]), y, accuracy: 2e-5 * (1 + abs(y)) * Double(hd).squareRoot(),
                                       "\(level) n \(n) hd \(hd) H \(H) group \(group) chunks \(chunks) head \(h) i \(i)")
                    }
                }
            }
        }
    }

    /// pk_attention_group equals pk_attention_head run head by head, bit for bit, at every level: group sizes of
    /// real models (1-8), a 16-head group, a 17-head one (past PK_ATTENTION_GROUP_MAX, head by head), lengths on both
    /// sides of the 16-position tile rule and of a tile's end, head sizes of the SIMD loops and an odd one
    /// (portable), soft-capping, and the group's key / value head at a column of wider rows.
    func testAttentionGroupEqualsHeadByHead() {
        var rng = TestRNG(14)
        SIMDLevels.each { level in
            for (n, hd, G, cap) in [(1, 64, 3, Float(0)), (15, 64, 3, 0), (16, 64, 3, 0), (17, 64, 2, 0), (250, 64, 3, 0),
                                    (512, 64, 7, 0), (100, 128, 4, 0), (33, 256, 2, 30), (47, 67, 3, 0), (40, 64, 16, 0),
                                    (40, 64, 17, 0), (64, 128, 8, 50), (31, 64, 1, 0)] {
                let ld = 3 * hd + 5, column = hd + 1   // the group's KV head in the middle of each row
                let q = (0..<(G * hd)).map { _ in rng.normal() * 2 }
                let K = (0..<(n * ld)).map { _ in rng.normal() }, V = (0..<(n * ld)).map { _ in rng.normal() }
                let scale = 1 / Float(hd).squareRoot(), lds = n + 3
                var want = [Float](repeating: .nan, count: G * hd), got = [Float](repeating: .nan, count: G * hd)
                var scores = [Float](repeating: .nan, count: G * lds)
                K.withUnsafeBufferPointer { kp in V.withUnsafeBufferPointer { vp in
                    let k = kp.baseAddress! + column, v = vp.baseAddress! + column
                    want.withUnsafeMutableBufferPointer { w in
                        for h in 0..<G {
                            var s = [Float](repeating: .nan, count: n)
                            pk_attention_head(Array(q[(h * hd)..<((h + 1) * hd)]), k, Int64(ld), v, Int64(ld), f32, Int64(n), Int64(hd),
                                              scale, cap, &s, w.baseAddress! + h * hd)
                        }
                    }
                    pk_attention_group(q, Int64(G), k, Int64(ld), v, Int64(ld), f32, Int64(n), Int64(hd), scale, cap, &scores,
                                       Int64(lds), &got)
                } }
                for i in 0..<(G * hd) where want[i].bitPattern != got[i].bitPattern {
                    XCTFail("\(level) n \(n) hd \(hd) G \(G) cap \(cap): head \(i / hd) element \(i % hd) \(got[i]) != \(want[i])")
                    break
                }
                // and against the Double softmax-attention, with testAttentionHeadMatchesNaive's bound
                for h in 0..<G {
                    let ref = Self.naive(q[(h * hd)..<((h + 1) * hd)], K, V, ld: ld, column: column, n: n, hd: hd, scale: scale, cap: cap)
                    for i in 0..<hd {
                        XCTAssertEqual(Double(got[h * hd + i]), ref[i], accuracy: 2e-5 * (1 + abs(ref[i])) * Double(hd).squareRoot(),
                                       "\(level) n \(n) hd \(hd) G \(G) head \(h) i \(i)")
                    }
                }
            }
        }
    }

    /// pk_attention_causal (a prompt's positions for one KV head's query heads, blocks of queries sharing each K / V
    /// tile) equals pk_attention_head run for each position and head over that position's rows, bit for bit, at
    /// every level: prompts that start under and past the 16-row rule, appended to a cache (n0 > 1), block sizes
    /// 16 / G with a partial last block, G = 16 (one position a block) and 17 (head by head), the SIMD head sizes and
    /// an odd one, soft-capping, and sliding windows that start past row 0 inside the prompt.
    func testAttentionCausalEqualsHeadByHead() {
        var rng = TestRNG(15)
        SIMDLevels.each { level in
            for (n0, P, hd, G, window, cap) in [(1, 40, 64, 3, 0, Float(0)), (200, 37, 64, 7, 0, 0), (5, 60, 128, 4, 0, 50),
                                                (1, 33, 256, 2, 0, 0), (1, 50, 64, 1, 0, 0), (10, 40, 67, 3, 0, 0),
                                                (1, 70, 64, 3, 20, 0), (1, 45, 64, 16, 0, 0), (30, 20, 64, 17, 0, 0),
                                                (3, 90, 128, 5, 40, 30), (100, 9, 64, 2, 64, 0)] {
                let rows = n0 + P - 1
                let ld = 3 * hd + 5, column = hd + 1   // the KV head in the middle of each row
                let ldq = G * hd + 7, ldo = G * hd + 3
                let q = (0..<(P * ldq)).map { _ in rng.normal() * 2 }
                let K = (0..<(rows * ld)).map { _ in rng.normal() }, V = (0..<(rows * ld)).map { _ in rng.normal() }
                let scale = 1 / Float(hd).squareRoot()
                var want = [Float](repeating: .nan, count: P * ldo), got = want
                K.withUnsafeBufferPointer { kp in V.withUnsafeBufferPointer { vp in
                    let k = kp.baseAddress! + column, v = vp.baseAddress! + column
                    want.withUnsafeMutableBufferPointer { w in
                        for t in 0..<P {
                            let n = n0 + t, lo = window > 0 ? max(0, n - window) : 0
                            for h in 0..<G {
                                var s = [Float](repeating: .nan, count: n)
                                pk_attention_head(Array(q[(t * ldq + h * hd)..<(t * ldq + (h + 1) * hd)]), k + lo * ld, Int64(ld),
                                                  v + lo * ld, Int64(ld), f32, Int64(n - lo), Int64(hd), scale, cap, &s,
                                                  w.baseAddress! + t * ldo + h * hd)
                            }
                        }
                    }
                    XCTAssertEqual(pk_attention_causal(q, Int64(ldq), Int64(P), Int64(G), k, Int64(ld), v, Int64(ld), f32, Int64(n0),
                                                       Int64(window), Int64(hd), scale, cap, &got, Int64(ldo)), 0)
                } }
                for t in 0..<P {
                    for i in 0..<(G * hd) where want[t * ldo + i].bitPattern != got[t * ldo + i].bitPattern {
                        XCTFail("\(level) n0 \(n0) P \(P) hd \(hd) G \(G) window \(window): position \(t) head \(i / hd) " +
                                "element \(i % hd) \(got[t * ldo + i]) != \(want[t * ldo + i])")
                        return
                    }
                    // and against the Double softmax-attention over the position's rows, with
                    // testAttentionHeadMatchesNaive's bound
                    let n = n0 + t, lo = window > 0 ? max(0, n - window) : 0
                    let Kw = Array(K[(lo * ld)...]), Vw = Array(V[(lo * ld)...])
                    for h in 0..<G {
                        let ref = Self.naive(q[(t * ldq + h * hd)..<(t * ldq + (h + 1) * hd)], Kw, Vw, ld: ld, column: column,
                                             n: n - lo, hd: hd, scale: scale, cap: cap)
                        for i in 0..<hd {
                            XCTAssertEqual(Double(got[t * ldo + h * hd + i]), ref[i], accuracy: 2e-5 * (1 + abs(ref[i])) * Double(hd).squareRoot(),
                                           "\(level) n0 \(n0) P \(P) hd \(hd) G \(G) window \(window): position \(t) head \(h) i \(i)")
                        }
                    }
                    // the gaps between positions' outputs untouched
                    for i in (G * hd)..<ldo where !got[t * ldo + i].isNaN {
                        XCTFail("\(level) n0 \(n0) P \(P) G \(G): position \(t) wrote past its heads at \(i)")
                        return
                    }
                }
            }
        }
    }

    /// An f16 KV cache: every attention entry point (pk_attention_head, _group, _causal, _partial) reading f16 K / V
    /// gives, bit for bit at every level, what it gives reading f32 K / V that hold the same values widened (the
    /// kernels widen exactly as they load, then run the f32 loop's operations): the SIMD head sizes and an odd one
    /// (portable), under and past the 16-row rule, grouped heads at a column of wider rows, a window, soft-capping.
    /// The f32 side is what the Double-reference tests above check; the grouped f16 result is also checked against
    /// the Double softmax-attention directly.
    func testF16CacheEqualsF32CacheOfTheSameValues() {
        var rng = TestRNG(16)
        SIMDLevels.each { level in
            for (n, hd, G, window, cap) in [(1, 64, 3, 0, Float(0)), (15, 64, 3, 0, 0), (40, 64, 3, 0, 0), (300, 64, 7, 0, 0),
                                            (70, 128, 4, 20, 30), (33, 256, 2, 0, 0), (47, 67, 3, 0, 0), (64, 128, 1, 0, 0)] {
                let ld = 3 * hd + 5, column = hd + 1, P = min(n, 37), n0 = n - P + 1
                let q = (0..<(P * G * hd)).map { _ in rng.normal() * 2 }
                let halfK = (0..<(n * ld)).map { _ in pk_f32_to_f16(rng.normal()) }
                let halfV = (0..<(n * ld)).map { _ in pk_f32_to_f16(rng.normal()) }
                let K = halfK.map { pk_f16_to_f32($0) }, V = halfV.map { pk_f16_to_f32($0) }
                let scale = 1 / Float(hd).squareRoot()
                // each entry point run on both caches; `run` gets the K / V base pointers (at the column) and the type
                func compare(_ what: String, count: Int, _ run: (UnsafeRawPointer, UnsafeRawPointer, Int32, UnsafeMutablePointer<Float>) -> Void) {
                    var want = [Float](repeating: .nan, count: count), got = want
                    K.withUnsafeBufferPointer { kp in V.withUnsafeBufferPointer { vp in
                        run(kp.baseAddress! + column, vp.baseAddress! + column, f32, &want)
                    } }
                    halfK.withUnsafeBufferPointer { kp in halfV.withUnsafeBufferPointer { vp in
                        run(kp.baseAddress! + column, vp.baseAddress! + column, f16, &got)
                    } }
                    XCTAssertFalse(want.allSatisfy(\.isNaN), "\(level) \(what): nothing written")
                    for i in 0..<count where want[i].bitPattern != got[i].bitPattern {
                        XCTFail("\(level) \(what) n \(n) hd \(hd) G \(G) window \(window): element \(i) f16 \(got[i]) != f32 \(want[i])")
                        return
                    }
                }
                compare("head", count: hd) { k, v, kv, out in
                    var s = [Float](repeating: 0, count: n)
                    pk_attention_head(q, k, Int64(ld), v, Int64(ld), kv, Int64(n), Int64(hd), scale, cap, &s, out)
                }
                compare("group", count: G * hd) { k, v, kv, out in
                    var s = [Float](repeating: 0, count: G * n)
                    pk_attention_group(q, Int64(G), k, Int64(ld), v, Int64(ld), kv, Int64(n), Int64(hd), scale, cap, &s, Int64(n), out)
                }
                // and the f16 side directly against the Double softmax-attention over the widened values, with
                // testAttentionHeadMatchesNaive's bound doubled for this test's queries of twice the scale (the
                // scores' f32 rounding grows with |q . k|)
                var grouped = [Float](repeating: .nan, count: G * hd), gs = [Float](repeating: 0, count: G * n)
                halfK.withUnsafeBufferPointer { kp in halfV.withUnsafeBufferPointer { vp in
                    pk_attention_group(q, Int64(G), kp.baseAddress! + column, Int64(ld), vp.baseAddress! + column, Int64(ld), f16,
                                       Int64(n), Int64(hd), scale, cap, &gs, Int64(n), &grouped)
                } }
                for h in 0..<G {
                    let ref = Self.naive(q[(h * hd)..<((h + 1) * hd)], K, V, ld: ld, column: column, n: n, hd: hd, scale: scale, cap: cap)
                    for i in 0..<hd where !(abs(Double(grouped[h * hd + i]) - ref[i]) <= 4e-5 * (1 + abs(ref[i])) * Double(hd).squareRoot()) {
                        XCTFail("\(level) f16 n \(n) hd \(hd) G \(G) head \(h) i \(i): \(grouped[h * hd + i]) vs Double \(ref[i])")
                        break
                    }
                }
                compare("causal", count: P * G * hd) { k, v, kv, out in
                    XCTAssertEqual(pk_attention_causal(q, Int64(G * hd), Int64(P), Int64(G), k, Int64(ld), v, Int64(ld), kv,
                                                       Int64(n0), Int64(window), Int64(hd), scale, cap, out, Int64(G * hd)), 0)
                }
                compare("partial + merge", count: G * hd) { k, v, kv, out in
                    // two chunks of the rows, the second's pointers offset in elements of the cache's type
                    let a = n / 2, es = kv == f16 ? 2 : 4
                    var s = [Float](repeating: 0, count: G * n), m = [Float](repeating: 0, count: 2 * G), l = m
                    var o = [Float](repeating: 0, count: 2 * G * hd)
                    s.withUnsafeMutableBufferPointer { sp in m.withUnsafeMutableBufferPointer { mp in
                        l.withUnsafeMutableBufferPointer { lp in o.withUnsafeMutableBufferPointer { op in
                            for (c, lo, hi) in [(0, 0, a), (1, a, n)] {
                                pk_attention_partial(q, Int64(G), Int64(G), k + lo * ld * es, v + lo * ld * es, Int64(ld), kv,
                                                     Int64(hi - lo), Int64(hd), scale, cap, sp.baseAddress! + lo, Int64(n),
                                                     mp.baseAddress! + c * G, lp.baseAddress! + c * G, op.baseAddress! + c * G * hd)
                            }
                        } }
                    } }
                    pk_attention_merge(a > 0 ? 2 : 1, Int64(G), Int64(hd), a > 0 ? m : Array(m[G...]), a > 0 ? l : Array(l[G...]),
                                       a > 0 ? o : Array(o[(G * hd)...]), out)
                }
            }
        }
    }

    /// pk_f32_to_f16_row (the f16 cache's writes; F16C / NEON conversion at the SIMD levels) equals pk_f32_to_f16
    /// value by value at every level: round to nearest even at ties, subnormals, the overflow edge, zeros, infinities.
    func testF32ToF16RowEqualsScalarConversion() {
        var rng = TestRNG(17)
        var x: [Float] = [0, -0, 1, -1, 65504, 65519.996, 65520, -65520, 1e6, .infinity, -.infinity, 6.1e-5, 6.0e-8,
                          2.98e-8, 2.9802322e-8, 5.9604645e-8, 1e-10, -3e-6, 1 + 1.0 / 2048, 1 + 3.0 / 2048, 1 + 1.0 / 4096]
        for e in -30...17 { for _ in 0..<40 { x.append(rng.normal() * Float(sign: .plus, exponent: e, significand: 1)) } }
        for i in 0..<200 { x.append(Float(bitPattern: 0x3380_0000 &+ UInt32(i) &* 0x1000)) }   // across the subnormal ties
        let want = x.map { pk_f32_to_f16($0) }
        SIMDLevels.each { level in
            for start in [0, 3] {   // whole vectors and a scalar tail, from an unaligned start
                var got = [UInt16](repeating: 0xFFFF, count: x.count)
                x.withUnsafeBufferPointer { xp in got.withUnsafeMutableBufferPointer { gp in
                    pk_f32_to_f16_row(xp.baseAddress! + start, gp.baseAddress! + start, Int64(x.count - start))
                } }
                for i in start..<x.count where got[i] != want[i] {
                    XCTFail("\(level): \(x[i]) (0x\(String(x[i].bitPattern, radix: 16))) -> 0x\(String(got[i], radix: 16)), want 0x\(String(want[i], radix: 16))")
                    break
                }
            }
        }
    }

    func testReadSum() {
        let n = 4096
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        defer { p.deallocate() }
        for i in 0..<n { p[i] = UInt32(i &* 2654435761 & 0xFFFF) }
        let want = (0..<n).reduce(UInt32(0)) { $0 &+ p[$1] }
        SIMDLevels.each { level in
            XCTAssertEqual(UInt32(truncatingIfNeeded: pk_read_sum(p, n * 4)), want, level)
        }
    }
}

final class ActivationKernelTests: XCTestCase {
    /// silu(g) * u and gelu_tanh(g) * u against Double formulas, over a wide range including the clamped tails.
    func testGatedActivations() {
        var rng = TestRNG(11)
        var g0: [Float] = [0, -0.0, 1e-6, -1e-6, 0.5, -0.5, 20, -20, 87, -87, 88.5, -88.5, 100, -100, 1e4, -1e4]
        for _ in 0..<(1000 - g0.count + 3) { g0.append(rng.normal() * 6) }   // length not a multiple of 8 or 16
        let u = g0.indices.map { _ in rng.normal() }
        SIMDLevels.each { level in
            for gelu in [false, true] {
                var g = g0
                if gelu { pk_gelu_tanh_mul(&g, u, Int64(g.count)) } else { pk_silu_mul(&g, u, Int64(g.count)) }
                for i in g.indices {
                    let x = Double(g0[i])
                    let act = gelu ? 0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
                                   : x / (1 + Foundation.exp(-x))
                    let want = act * Double(u[i])
                    // a few f32 roundings of each intermediate (exp to ~1 ulp, divide, multiplies): 8 ulps relative,
                    // plus an absolute floor below which the function is ~0 (its tails, e.g. x e^x for x << 0)
                    let tol = 8 * Double(Float.ulpOfOne) * abs(want) + 1e-30 + (gelu ? 1e-7 * abs(x * Double(u[i])) : 0)
                    if !(abs(Double(g[i]) - want) <= tol) {
                        XCTFail("\(level) \(gelu ? "gelu_tanh" : "silu")(\(x)) * \(u[i]) = \(g[i]), want \(want)"); return
                    }
                }
            }
        }
    }
}
