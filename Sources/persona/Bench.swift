import ArgumentParser
import CPersonaKernels
import Foundation
import PersonaCore
import PersonaModels
import PersonaTensor

/// `persona bench`: prefill and decode speed (plain, monitored, steered) against the machine's measured
/// memory bandwidth, on a real model or on random weights of a real model's shape.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill / decode speed, monitoring and steering overhead, bandwidth use, memory and load time.")

    @Option(help: "A Hugging Face model folder or a .gguf file.")
    var model: String?

    @Option(help: "A Hugging Face config.json: benchmark random weights of that shape (e.g. ../shared/configs/qwen2.5-0.5b-instruct.json).")
    var config: String?

    @Option(help: "Storage type of synthetic weights: \(SyntheticTypes.names).")
    var dtype: String = "bf16"

    @Option(help: "Worker threads (default: PERSONA_THREADS or one per core).")
    var threads: Int?

    @Option(name: .customLong("prompt-tokens"), help: "Prompt length for the prefill measurement.")
    var promptTokens: Int = 128

    @Option(name: .customLong("decode-tokens"), help: "Tokens per decode measurement.")
    var decodeTokens: Int = 64

    @Option(help: "Repetitions of each measurement; the best is reported (the machine may be shared).")
    var repeats: Int = 3

    @Option(help: "Seed of the synthetic weights and prompt ids.")
    var seed: UInt64 = 1

    @Option(name: .customLong("dump-gguf"), help: "Write the synthetic weights as GGUF (llama / qwen2 shapes) and benchmark the model loaded back from it.")
    var dumpGGUF: String?

    @OptionGroup var precisionOption: PrecisionOption

    @Option(help: "Also measure decoding N sequences at once (one batched forward pass per step, as extraction and batch monitoring do); 0 skips it.")
    var batch: Int = 0

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if (model == nil) == (config == nil) { throw ValidationError("give exactly one of --model PATH or --config CONFIG.json") }
        if SyntheticTypes(name: dtype) == nil { throw ValidationError("--dtype must be one of \(SyntheticTypes.names) (got '\(dtype)')") }
        if promptTokens < 1 || decodeTokens < 1 { throw ValidationError("--prompt-tokens and --decode-tokens must be at least 1") }
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if batch < 0 || batch > 256 { throw ValidationError("--batch must be in 0...256") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        if dumpGGUF != nil && config == nil { throw ValidationError("--dump-gguf needs --config (it writes synthetic weights)") }
    }

    func run() throws {
        // The shared pool reads PERSONA_THREADS when first used, which is below.
        if let t = threads { setenv("PERSONA_THREADS", String(t), 1) }
        let pool = ThreadPool.shared
        var report = BenchReport()
        report.threads = pool.threads
        report.simd = String(cString: pk_simd_level())
        report.cpu = cpuName()
        report.date = ISO8601DateFormatter().string(from: Date())
        #if DEBUG
        report.build = "debug"
        #else
        report.build = "release"
        #endif

        // load (or synthesise) the network
        var net: TransformerModel
        let t0 = Date()
        if let config {
            let url = URL(fileURLWithPath: config)
            let c = try ArchitectureRegistry.config(hfConfigAt: url)
            net = try TransformerModel.synthetic(config: c, types: SyntheticTypes(name: dtype)!, seed: seed, pool: pool)
            report.source = "synthetic \(url.deletingPathExtension().lastPathComponent)"
            report.loadSeconds = Date().timeIntervalSince(t0)
            report.loadKind = "synthesised in memory"
            if let dumpGGUF {
                try net.writeBenchmarkGGUF(to: URL(fileURLWithPath: dumpGGUF))
                net = try ModelLoader.loadNetwork(path: dumpGGUF)   // warm page cache: this is the load time
                let t1 = Date()
                net = try ModelLoader.loadNetwork(path: dumpGGUF)
                report.loadSeconds = Date().timeIntervalSince(t1)
                report.loadKind = "GGUF from page cache"
                report.source += " (\(dumpGGUF))"
            }
        } else {
            net = try ModelLoader.loadNetwork(path: model!)
            report.loadSeconds = Date().timeIntervalSince(t0)
            report.loadKind = "from disk / page cache"
            report.source = model!
        }
        precisionOption.apply(to: net)
        report.precision = net.precision.rawValue
        report.kvCacheType = net.kvCacheType.rawValue
        let c = net.config
        report.architecture = c.architecture
        report.dtype = config != nil ? SyntheticTypes(name: dtype)!.name : net.weightType.rawValue
        report.weightTypes = net.weightTypeCounts
        report.weightBytesPerToken = net.weightBytesPerToken
        report.weightBytesTotal = net.weightBytesTotal
        report.promptTokens = promptTokens
        report.decodeTokens = decodeTokens

        var rng = BenchRNG(seed)
        let prompt = (0..<promptTokens).map { _ in Int(rng.next() % UInt64(c.vocabSize)) }
        let capacity = min(c.maxPositions, promptTokens + decodeTokens + 1)
        let cache = net.makeCache(capacity: capacity)
        report.kvCacheBytes = cache.byteCount
        report.kvBytesPerToken = BenchReport.kvBytesPerDecodeStep(config: c, elementSize: net.kvCacheType.elementSize,
                                                                  promptTokens: promptTokens, decodeTokens: decodeTokens)

        // prefill: the whole prompt in one batched forward
        var best = Double.infinity
        for _ in 0..<repeats {
            cache.reset()
            let s = Date()
            try net.forward(prompt, cache: cache, logits: .last)
            best = min(best, Date().timeIntervalSince(s))
        }
        report.prefillTokensPerSecond = Double(promptTokens) / best

        // decode: plain, monitored (the real TraitMonitor: 8 traits at every hidden-state row, with each token's
        // scores read out as `monitor` streams them), steered (one vector added)
        let D = c.hiddenSize, traits = 8
        let traitVectors = (0..<traits).map { k in
            TraitVector(trait: "trait\(k)", method: "bench",
                        rows: (0...c.numLayers).map { _ in (0..<D).map { _ in Float(rng.next() >> 40) * 0x1p-24 - 0.5 } })
        }
        let traitMonitor = try TraitMonitor(vectors: traitVectors, layers: .all, numLayers: c.numLayers, hiddenSize: D,
                                            capacity: capacity)
        let monitor = HookSet(traitMonitor.interventions())
        let steerVector = (0..<D).map { _ in Float(rng.next() >> 40) * 0x1p-24 - 0.5 }
        let steer = HookSet([Intervention(.residPost(c.numLayers / 2), positions: .all, .add(vector: steerVector, coef: 4))])

        // One timed decode of decodeTokens steps after a fresh prefill; returns seconds. `readScores` reads each
        // step's scores (the monitored variant).
        func decodeOnce(_ hooks: HookSet, readScores: Bool = false) throws -> Double {
            cache.reset()
            var logits = try net.forward(prompt, cache: cache, hooks: hooks, logits: .last)
            var one = [0]
            let s = Date()
            for _ in 0..<decodeTokens {
                one[0] = argmax(logits)
                logits = try net.forward(one, cache: cache, hooks: hooks, logits: .last)
                if readScores { _ = traitMonitor.primaryScores(position: cache.count - 1) }
            }
            return Date().timeIntervalSince(s)
        }
        // Memory bandwidth: stream the weights themselves (no extra buffer).
        func bandwidth() -> Double {
            let (b, s) = net.streamWeightsOnce(pool: pool)
            return Double(b) / s
        }
        // The variants take turns within each repeat (and the bandwidth probe runs between them), so all of them
        // see the same machine load; the best time of each is kept.
        var best3 = [Double.infinity, .infinity, .infinity]
        var bw = 0.0
        for _ in 0..<repeats {
            for (i, hooks) in [HookSet(), monitor, steer].enumerated() {
                best3[i] = min(best3[i], try decodeOnce(hooks, readScores: i == 1))
                bw = max(bw, bandwidth())
            }
        }
        report.decodePlain = Double(decodeTokens) / best3[0]
        report.decodeMonitored = Double(decodeTokens) / best3[1]
        report.decodeSteered = Double(decodeTokens) / best3[2]
        report.bandwidthBytesPerSecond = bw

        // batched decode: `batch` sequences with prompts of their own, decodeTokens steps in lockstep
        if batch > 0 {
            let prompts = (0..<batch).map { _ in (0..<promptTokens).map { _ in Int(rng.next() % UInt64(c.vocabSize)) } }
            let caches = (0..<batch).map { _ in net.makeCache(capacity: capacity) }
            var bestBatch = Double.infinity
            for _ in 0..<repeats {
                caches.forEach { $0.reset() }
                var logits = try net.forward(batch: (0..<batch).map { BatchSequence(tokens: prompts[$0], cache: caches[$0]) })
                let s = Date()
                for _ in 0..<decodeTokens {
                    let next = (0..<batch).map { b in argmax(UnsafeBufferPointer(rebasing: logits[(b * c.vocabSize)..<((b + 1) * c.vocabSize)])) }
                    logits = try net.forward(batch: (0..<batch).map { BatchSequence(tokens: [next[$0]], cache: caches[$0]) })
                }
                bestBatch = min(bestBatch, Date().timeIntervalSince(s))
            }
            report.batch = batch
            report.decodeBatched = Double(batch * decodeTokens) / bestBatch
        }
        report.peakRSSBytes = peakRSS()
        print(json ? report.jsonText() : report.table())
    }
}

/// Everything one `persona bench` run reports.
struct BenchReport: Codable {
    var source = "", architecture = "", dtype = "", cpu = "", simd = "", build = "", date = "", loadKind = ""
    var weightTypes = ""
    var precision = "exact"
    var kvCacheType = "f32"
    var threads = 1, promptTokens = 0, decodeTokens = 0
    var weightBytesPerToken = 0, weightBytesTotal = 0, kvCacheBytes = 0, peakRSSBytes = 0
    /// Key and value bytes one timed decode step reads, the mean over the steps (each attends to every position so
    /// far, a sliding-window layer to its window).
    var kvBytesPerToken = 0
    var loadSeconds = 0.0, prefillTokensPerSecond = 0.0
    var decodePlain = 0.0, decodeMonitored = 0.0, decodeSteered = 0.0
    var bandwidthBytesPerSecond = 0.0
    /// Sequences decoded at once in the batched measurement (0: not measured) and their summed tokens per second.
    var batch = 0, decodeBatched = 0.0

    /// Decode speed if every weight byte and the cached keys and values attended to were read once per token at the
    /// measured bandwidth.
    var bandwidthBoundTokensPerSecond: Double { bandwidthBytesPerSecond / Double(max(weightBytesPerToken + kvBytesPerToken, 1)) }

    var bandwidthRatio: Double { decodePlain / max(bandwidthBoundTokensPerSecond, 1e-9) }
    var monitorOverhead: Double { decodePlain / max(decodeMonitored, 1e-9) - 1 }
    var steerOverhead: Double { decodePlain / max(decodeSteered, 1e-9) - 1 }

    /// The mean over decode steps promptTokens ..< promptTokens + decodeTokens of the cached key and value bytes a
    /// step reads: step p attends to positions 0 ... p, a sliding-window layer to the last `slidingWindow` of them.
    static func kvBytesPerDecodeStep(config c: ModelConfig, elementSize: Int, promptTokens: Int, decodeTokens: Int) -> Int {
        guard decodeTokens > 0 else { return 0 }
        var rows = 0
        for p in promptTokens ..< promptTokens + decodeTokens {
            for l in 0 ..< c.numLayers {
                rows += c.slidingLayers[l] ? min(p + 1, c.slidingWindow ?? p + 1) : p + 1
            }
        }
        return 2 * c.kvDim * elementSize * rows / decodeTokens
    }

    func jsonText() -> String {
        var d: [String: Any] = [
            "source": source, "architecture": architecture, "dtype": dtype, "weight_types": weightTypes, "precision": precision, "kv_cache_type": kvCacheType, "cpu": cpu, "simd": simd, "build": build,
            "date": date, "threads": threads, "prompt_tokens": promptTokens, "decode_tokens": decodeTokens,
            "weight_bytes_per_token": weightBytesPerToken, "weight_bytes_total": weightBytesTotal,
            "kv_cache_bytes": kvCacheBytes, "kv_bytes_per_token": kvBytesPerToken, "peak_rss_bytes": peakRSSBytes, "load_seconds": loadSeconds, "load_kind": loadKind,
            "prefill_tok_s": prefillTokensPerSecond, "decode_tok_s": decodePlain, "decode_monitored_tok_s": decodeMonitored,
            "decode_steered_tok_s": decodeSteered, "bandwidth_gb_s": bandwidthBytesPerSecond / 1e9,
            "bandwidth_bound_tok_s": bandwidthBoundTokensPerSecond, "bandwidth_ratio": bandwidthRatio,
            "monitor_overhead": monitorOverhead, "steer_overhead": steerOverhead,
            "batch": batch, "decode_batched_tok_s": decodeBatched,
        ]
        d = d.mapValues { v in (v as? Double).map { $0.isFinite ? $0 : 0 } ?? v }
        let data = (try? JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func table() -> String {
        func f(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }
        let mib = { (b: Int) in f(Double(b) / 1_048_576, 0) + " MiB" }
        let rows: [(String, String)] = [
            ("model", "\(source) [\(architecture), \(dtype)]"),
            ("weight types", weightTypes),
            ("precision", precision == "native" ? "native (activations rounded as llama.cpp: int8 blocks / bf16 / f16)" : "exact (f32 activations)"),
            ("machine", "\(cpu), \(threads) threads, \(simd), \(build) build, \(date)"),
            ("load", "\(f(loadSeconds, 3)) s (\(loadKind))"),
            ("prefill", "\(f(prefillTokensPerSecond)) tok/s (\(promptTokens) tokens)"),
            ("decode plain", "\(f(decodePlain, 2)) tok/s"),
            ("decode monitored", "\(f(decodeMonitored, 2)) tok/s (TraitMonitor: 8 traits x every row, \(f(monitorOverhead * 100))% overhead)"),
            ("decode steered", "\(f(decodeSteered, 2)) tok/s (one vector added, \(f(steerOverhead * 100))% overhead)"),
        ] + (batch > 0 ? [
            ("decode batched", "\(f(decodeBatched, 2)) tok/s summed over \(batch) sequences (\(f(decodeBatched / max(decodePlain, 1e-9), 2))x one sequence)"),
        ] : []) + [
            ("memory bandwidth", "\(f(bandwidthBytesPerSecond / 1e9, 2)) GB/s (streaming the weights, \(threads) threads, best of the probes between decode runs)"),
            ("bandwidth bound", "\(f(bandwidthBoundTokensPerSecond, 2)) tok/s (\(mib(weightBytesPerToken)) of weights + \(f(Double(kvBytesPerToken) / 1_048_576, 1)) MiB of KV cache per token); decode reaches \(f(bandwidthRatio * 100, 0))%"),
            ("peak RSS", "\(mib(peakRSSBytes)) (weights \(mib(weightBytesTotal)) + KV cache \(mib(kvCacheBytes)), \(kvCacheType))"),
        ]
        let w = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
    }
}

private struct BenchRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &+ 0x5DEECE66D }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

private func argmax(_ v: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for i in v.indices where v[i] > v[best] { best = i }
    return best
}

private func peakRSS() -> Int {
    var u = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Int(u.ru_maxrss) * 1024   // kilobytes on Linux
    #else
    getrusage(RUSAGE_SELF, &u)
    return Int(u.ru_maxrss)          // bytes on macOS
    #endif
}

private func cpuName() -> String {
    #if os(Linux)
    if let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
       let line = s.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
       let name = line.split(separator: ":", maxSplits: 1).last {
        return name.trimmingCharacters(in: .whitespaces)
    }
    #endif
    return "unknown CPU"
}
