import CPersonaKernels
import Foundation

/// Numerical building blocks of the forward pass. All buffers are f32, row-major.
public enum Ops {
    /// y[t, :] = W x[t, :] for t in 0..<T.  x: [T, W.cols], y: [T, W.rows].
    /// Rows are split into chunks of a multiple of 16 rows (64-byte lines of y, whole 4-row tiles), several per
    /// thread so that a thread that gets preempted on a shared machine leaves its chunks to the others.
    /// `precision` `.native` rounds the activations as llama.cpp does for bf16 and every quantised type (see
    /// `MatmulPrecision`), and to f16 for f16 weights; f32 computes as `.exact`. `.exact` at T == 1 lays x out once per call for the
    /// AVX-512 quantised kernels (`MatmulJob.prepare`). Allocates nothing once the calling thread's scratch has grown
    /// to the largest T x cols it has seen.
    public static func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, T: Int, _ y: UnsafeMutablePointer<Float>,
                              precision: MatmulPrecision = .exact, pool: ThreadPool = .shared) {
        var job = MatmulJob(code: w.dtype.kernelCode, cols: w.cols, x: x, T: T, precision: precision, pool: pool)
        job.add(w, y, threads: pool.threads)
        job.run(pool)
    }

    /// `y_i = W_i x` for two or three matrices that read the same x (q / k / v, gate / up). When they share a type
    /// and a width, one hand-off to the pool runs all their row chunks, and x is rounded (`.native`) or laid out
    /// (`.exact` at T == 1) once instead of once per matrix: a decode step of a small model is made of many small
    /// products, and each hand-off and each rounding of x cost about as much as a few hundred rows. Each row range is
    /// computed by the same kernel as `matmul` with the same chunks, so the results are the same bits. Matrices of
    /// different types or widths go one by one through `matmul`.
    public static func matmul(_ w0: WeightMatrix, _ y0: UnsafeMutablePointer<Float>, _ w1: WeightMatrix,
                              _ y1: UnsafeMutablePointer<Float>, _ w2: WeightMatrix? = nil, _ y2: UnsafeMutablePointer<Float>? = nil,
                              x: UnsafePointer<Float>, T: Int, precision: MatmulPrecision = .exact, pool: ThreadPool = .shared) {
        let code = w0.dtype.kernelCode, cols = w0.cols
        func same(_ w: WeightMatrix?) -> Bool { w.map { $0.dtype.kernelCode == code && $0.cols == cols } ?? true }
        guard same(w1), same(w2), (w2 == nil) == (y2 == nil) else {
            matmul(w0, x, T: T, y0, precision: precision, pool: pool)
            matmul(w1, x, T: T, y1, precision: precision, pool: pool)
            if let w2, let y2 { matmul(w2, x, T: T, y2, precision: precision, pool: pool) }
            return
        }
        var job = MatmulJob(code: code, cols: cols, x: x, T: T, precision: precision, pool: pool)
        job.add(w0, y0, threads: pool.threads)
        job.add(w1, y1, threads: pool.threads)
        if let w2, let y2 { job.add(w2, y2, threads: pool.threads) }
        job.run(pool)
    }

    /// One to three matrices of one type and width on one x, their row chunks numbered one after another. Plain
    /// fields, no arrays: the decode step allocates nothing.
    struct MatmulJob {
        /// `.native`: x rounded once per call into the calling thread's scratch (C, `pk_thread_scratch`), then every
        /// row chunk reads it. Once per call rather than once per chunk, because for a prompt the rounding costs
        /// about as much per chunk as the integer / bf16 dot products it feeds; per thread, because models on
        /// different threads may multiply at the same time (pool workers only read the caller's buffer, and a
        /// matmul never runs another matmul inside its tasks). `.exactPrepared`: T == 1 for the quantised types
        /// whose SIMD level reads x in an order of its own, x laid out once the same way (`pk_exact_prepare`).
        /// `.rows`: `pk_matmul_rows` on x as it is: the other cases, and where a type has no such kernel or the
        /// scratch cannot be allocated.
        enum Mode { case rows, native, exactPrepared }
        struct Part { var data: UnsafeRawPointer, y: UnsafeMutablePointer<Float>, rows: Int64, per: Int64, end: Int64 }
        var mode = Mode.rows, code: Int32, cols: Int64, x: UnsafePointer<Float>, xp: UnsafeRawPointer? = nil, T: Int64
        var p0: Part? = nil, p1: Part? = nil, p2: Part? = nil
        var chunks: Int64 { (p2 ?? p1 ?? p0)?.end ?? 0 }

        /// Picks the kernels and prepares x for them.
        init(code: Int32, cols: Int, x: UnsafePointer<Float>, T: Int, precision: MatmulPrecision, pool: ThreadPool) {
            self.code = code
            self.cols = Int64(cols)
            self.x = x
            self.T = Int64(T)
            if precision == .native, T > 0, pk_native_supported(code) != 0,
               let xn = Ops.nativePrepared(code, cols: cols, x, T: T, pool: pool) {
                (mode, xp) = (.native, UnsafeRawPointer(xn))
            } else if T == 1, let prepared = Ops.exactPrepared(code, cols: cols, x) {
                (mode, xp) = (.exactPrepared, UnsafeRawPointer(prepared))
            }
        }

        mutating func add(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, threads: Int) {
            let per = Int64(Ops.matmulChunkRows(rows: w.rows, threads: threads)), rows = Int64(w.rows)
            let part = Part(data: w.data, y: out, rows: rows, per: per, end: chunks + (rows + per - 1) / per)
            if p0 == nil { p0 = part } else if p1 == nil { p1 = part } else { p2 = part }
        }

        /// Every chunk on the pool (inline when there is one).
        mutating func run(_ pool: ThreadPool) {
            let n = Int(chunks)
            withUnsafeMutablePointer(to: &self) { p in
                pool.parallelFor(n, context: UnsafeMutableRawPointer(p)) { ctx, c in
                    ctx!.assumingMemoryBound(to: MatmulJob.self).pointee.run(chunk: c)
                }
            }
        }

        func run(chunk c: Int64) {
            let (part, start) = c < p0!.end ? (p0!, 0) : c < p1!.end ? (p1!, p0!.end) : (p2!, p1!.end)
            let r0 = (c - start) * part.per, r1 = min(part.rows, r0 + part.per)
            switch mode {
            case .rows: pk_matmul_rows(code, part.data, cols, x, cols, T, part.y, part.rows, r0, r1)
            case .native: pk_matmul_rows_native(code, part.data, cols, xp!, T, part.y, part.rows, r0, r1)
            case .exactPrepared:
                pk_matvec_exact_prepared(code, part.data, cols, xp!.assumingMemoryBound(to: Float.self), part.y, r0, r1)
            }
        }
    }

    /// x rounded for the native kernels of type `code` into the calling thread's scratch (a long prompt's tokens
    /// spread over the pool: they are independent); nil where the type has no native form or no memory.
    static func nativePrepared(_ code: Int32, cols: Int, _ x: UnsafePointer<Float>, T: Int, pool: ThreadPool) -> UnsafeMutableRawPointer? {
        let stride = pk_native_x_stride(code, Int64(cols))
        guard stride > 0 else { return nil }
        let (bytes, overflow) = stride.multipliedReportingOverflow(by: T)
        guard !overflow, let xn = pk_thread_scratch(bytes) else { return nil }
        let tokenChunks = pool.threads > 1 && T >= 16 ? min(T, pool.threads * 4) : 1
        if tokenChunks <= 1 {
            pk_native_prepare(code, x, Int64(cols), Int64(cols), xn, 0, Int64(T))
            return xn
        }
        var job = PrepareJob(code: code, cols: Int64(cols), x: x, xn: xn, T: Int64(T), tokenChunks: Int64(tokenChunks))
        withUnsafeMutablePointer(to: &job) { p in
            pool.parallelFor(tokenChunks, context: UnsafeMutableRawPointer(p)) { ctx, c in
                let j = ctx!.assumingMemoryBound(to: PrepareJob.self).pointee
                let t0 = Int64(c) * j.T / j.tokenChunks, t1 = Int64(c + 1) * j.T / j.tokenChunks
                pk_native_prepare(j.code, j.x, j.cols, j.cols, j.xn, t0, t1)
            }
        }
        return xn
    }

    struct PrepareJob {
        var code: Int32, cols: Int64, x: UnsafePointer<Float>, xn: UnsafeMutableRawPointer, T: Int64, tokenChunks: Int64
    }

    /// x laid out for the exact T == 1 kernels of type `code` in the calling thread's scratch; nil where there are
    /// none at this SIMD level, or no memory.
    static func exactPrepared(_ code: Int32, cols: Int, _ x: UnsafePointer<Float>) -> UnsafeMutablePointer<Float>? {
        let floats = pk_exact_x_floats(code, Int64(cols))
        guard floats > 0, floats <= Int64.max / 4,
              let raw = pk_thread_scratch_slot(Int32(PK_SCRATCH_EXACT), Int(floats) * 4) else { return nil }
        let xp = raw.assumingMemoryBound(to: Float.self)
        pk_exact_prepare(code, x, Int64(cols), xp)
        return xp
    }

    /// Rows per task: about 8 tasks per thread, at least 64 rows, a multiple of 16.
    static func matmulChunkRows(rows: Int, threads: Int) -> Int {
        if threads <= 1 { return max(rows, 1) }
        let target = max(64, rows / (threads * 8))
        return (target + 15) / 16 * 16
    }

    /// RMSNorm over each of T rows of length n: out = x / rms(x) * (offset + weight).
    /// Gemma stores weights as w with scale (1 + w): pass offset 1.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, offset: Float, eps: Float,
                               n: Int, T: Int, out: UnsafeMutablePointer<Float>) {
        for t in 0..<T {
            let xr = x + t * n, o = out + t * n
            let ss = pk_dot_f32(xr, xr, Int64(n))
            let inv = 1 / (ss / Float(n) + eps).squareRoot()
            for i in 0..<n { o[i] = xr[i] * inv * (offset + weight[i]) }
        }
    }

    /// LayerNorm without a bias (Cohere): (x - mean) / sqrt(variance + eps) * w, per row of n.
    /// LayerNorm without bias, times (offset + w) (Nemotron's LayerNorm1P: 1; else 0).
    public static func layerNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, offset: Float = 0, eps: Float,
                                 n: Int, T: Int, out: UnsafeMutablePointer<Float>) {
        for t in 0..<T {
            let xr = x + t * n, o = out + t * n
            var sum: Float = 0
            for i in 0..<n { sum += xr[i] }
            let mean = sum / Float(n)
            var ss: Float = 0
            for i in 0..<n { let d = xr[i] - mean; ss += d * d }
            let inv = 1 / (ss / Float(n) + eps).squareRoot()
            for i in 0..<n { o[i] = (xr[i] - mean) * inv * (offset + weight[i]) }
        }
    }

    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }

    /// Adds a bias row to each of T rows.
    public static func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, n: Int, T: Int) {
        for t in 0..<T { add(y + t * n, bias, count: n) }
    }

    public static func silu(_ x: Float) -> Float { x / (1 + Foundation.exp(-x)) }

    /// tanh approximation of GELU (gelu_pytorch_tanh).
    public static func geluTanh(_ x: Float) -> Float {
        let c: Float = 0.7978845608028654 // sqrt(2/pi)
        return 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x)))
    }

    /// Exact GELU with erf.
    public static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot().float)) }

    /// In-place softmax of n values.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, n: Int) {
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var s: Float = 0
        for i in 0..<n { let e = Foundation.exp(x[i] - m); x[i] = e; s += e }
        let inv = 1 / s
        for i in 0..<n { x[i] *= inv }
    }

    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, n: Int) -> Float {
        pk_dot_f32(a, b, Int64(n))
    }

    /// Softmax weights e_i = exp((x_i - shift) / temperature), 0 where below `cut`, into `out` (nil: the sum only);
    /// returns their sum. The same weight bits at every SIMD level (C: pk_softmax_weights).
    public static func softmaxWeights(_ x: UnsafePointer<Float>, count n: Int, shift: Float, temperature: Float = 1,
                                      cut: Float = 0, out: UnsafeMutablePointer<Float>?) -> Double {
        pk_softmax_weights(x, Int64(n), shift, temperature, cut, out)
    }

    /// One weight exactly as `softmaxWeights` computes it.
    public static func softmaxWeight(_ v: Float, shift: Float, temperature: Float = 1) -> Float {
        pk_softmax_weight(v, shift, temperature)
    }
}

extension Double { @inlinable var float: Float { Float(self) } }
