import CPersonaKernels
import Foundation
import PersonaTensor

extension TransformerModel {
    /// Reads every weight byte a decode step reads (block matrices and the output head), spread over `pool`,
    /// and returns the bytes read and the seconds taken: the memory bandwidth that bounds decoding, measured on
    /// the model's own pages (mapped or owned), with no extra buffer.
    public func streamWeightsOnce(pool: ThreadPool = .shared) -> (bytes: Int, seconds: Double) {
        var spans: [(UnsafeRawPointer, Int)] = []
        for l in weights.layers {
            for m in [l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down] { spans.append((m.data, m.byteCount)) }
        }
        spans.append((weights.lmHead.data, weights.lmHead.byteCount))
        // 1 MiB pieces, cache-line aligned, claimed one at a time by the pool's threads
        let piece = 1 << 20
        var pieces: [(UnsafeRawPointer, Int)] = []
        var total = 0
        for (p, n) in spans {
            var off = 0
            while off < n { let len = min(piece, n - off) & ~63; if len == 0 { break }; pieces.append((p + off, len)); off += len; total += len }
        }
        let sink = UnsafeMutablePointer<UInt64>.allocate(capacity: pieces.count)
        defer { sink.deallocate() }
        let start = DispatchTime.now().uptimeNanoseconds
        pieces.withUnsafeBufferPointer { ps in
            pool.parallelFor(ps.count) { i in sink[i] = pk_read_sum(ps[i].0, ps[i].1) }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (total, seconds)
    }
}
