import Foundation
import PersonaModels
import PersonaTensor

/// Continuous batching: generations submitted at any time share the model's forward passes. One worker thread
/// owns the model; each step runs the new requests' prompts and one token of every running request together
/// (`TransformerModel.forward(batch:)`), so several users of a server cost little more than one while decoding
/// is bound by reading the weights. Each request keeps its own cache, hooks and sampler, so its tokens are those
/// it would get alone (up to f32 rounding of the batched products).
///
/// Callbacks run on the worker thread and must not block: `onToken` returns false to stop that request;
/// `onFinish` is called exactly once per request, with its result or its error.
public final class BatchScheduler: @unchecked Sendable {
    public let loaded: LoadedModel
    /// Most requests in one step; more wait for a place.
    public let maxBatch: Int

    private struct Job {
        let promptIds: [Int]
        let options: GenerationOptions
        let hooks: HookSet
        let onToken: (TokenEvent) -> Bool
        let onFinish: (Result<GenerationResult, Error>) -> Void
    }

    /// A running request.
    private final class Running {
        let job: Job
        let cache: KVCache
        var state: SequenceState
        /// Tokens to run next step (the prompt at first, then one token).
        var input: [Int]
        /// Only the final token's own state is wanted (processFinalToken): no sampling after this step.
        var finalOnly = false
        let submitted: Date
        var prefillSeconds = 0.0
        var decodeStart = Date()
        init(job: Job, cache: KVCache, state: SequenceState) {
            self.job = job
            self.cache = cache
            self.state = state
            input = job.promptIds
            submitted = Date()
        }
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var stopping = false
    private var thread: Thread?

    public init(loaded: LoadedModel, maxBatch: Int = 8) {
        self.loaded = loaded
        self.maxBatch = max(1, maxBatch)
    }

    /// Queues a generation. Bad input (empty prompt, context too long, invalid sampling) is reported through
    /// `onFinish` like any other failure.
    public func submit(promptIds: [Int], options: GenerationOptions, hooks: HookSet = HookSet(),
                       onToken: @escaping (TokenEvent) -> Bool, onFinish: @escaping (Result<GenerationResult, Error>) -> Void) {
        let job = Job(promptIds: promptIds, options: options, hooks: hooks, onToken: onToken, onFinish: onFinish)
        condition.lock()
        if stopping {
            condition.unlock()
            onFinish(.failure(GenerationError("the batch scheduler has been shut down")))
            return
        }
        if thread == nil {
            let t = Thread { [weak self] in self?.work() }
            t.stackSize = 8 << 20
            t.name = "persona-batch"
            thread = t
            t.start()
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Stops the worker once the requests it holds are done; later submissions fail at once. (The worker keeps
    /// the scheduler alive until then.)
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        var running: [Running] = []
        while true {
            condition.lock()
            while queue.isEmpty && running.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && running.isEmpty && stopping { condition.unlock(); return }
            let room = maxBatch - running.count
            let admitted = Array(queue.prefix(max(0, room)))
            queue.removeFirst(admitted.count)
            condition.unlock()
            for job in admitted {
                if let r = start(job) { running.append(r) }
            }
            if running.isEmpty { continue }
            running = step(running)
        }
    }

    /// Validates and sets up a request; nil (after reporting the error) if it cannot run.
    private func start(_ job: Job) -> Running? {
        let model = loaded.model
        do {
            try job.options.sampling.validate()
            guard !job.promptIds.isEmpty else { throw GenerationError("the prompt is empty (no tokens)") }
            guard job.options.maxTokens >= 0 else { throw GenerationError("max tokens must be >= 0, got \(job.options.maxTokens)") }
            let maxPos = model.config.maxPositions
            guard job.promptIds.count < maxPos else {
                throw GenerationError("the prompt has \(job.promptIds.count) tokens; the model's context length is \(maxPos)")
            }
            let capacity = min(maxPos, job.promptIds.count + job.options.maxTokens + (job.options.processFinalToken ? 1 : 0))
            let state = SequenceState(promptIds: job.promptIds, options: job.options,
                                      eos: job.options.stopAtEOS ? loaded.eosTokenIds : [], tokenizer: loaded.tokenizer.tokenizer)
            return Running(job: job, cache: model.makeCache(capacity: capacity), state: state)
        } catch {
            job.onFinish(.failure(error))
            return nil
        }
    }

    /// One forward pass for all running requests, then sampling; returns those still running.
    private func step(_ running: [Running]) -> [Running] {
        let model = loaded.model
        let V = model.config.vocabSize
        var logits: UnsafeBufferPointer<Float>
        do {
            logits = try model.forward(batch: running.map { BatchSequence(tokens: $0.input, cache: $0.cache, hooks: $0.job.hooks) },
                                       logits: .last)
        } catch {
            // One request's failure (e.g. an overflowing steering vector) must not end the others': the caches
            // are unchanged by a failed pass, so run each alone and fail only those that fail alone.
            return running.compactMap { r in
                do {
                    let l = try model.forward(r.input, cache: r.cache, hooks: r.job.hooks, logits: .last)
                    return consume(r, logits: l) ? r : nil
                } catch {
                    r.job.onFinish(.failure(error))
                    return nil
                }
            }
        }
        var still: [Running] = []
        var scratchRow = 0
        for r in running {
            let row = UnsafeBufferPointer(rebasing: logits[(scratchRow * V)..<((scratchRow + 1) * V)])
            scratchRow += 1
            if consume(r, logits: row) { still.append(r) }
        }
        return still
    }

    private var scratch: [Float] = []

    /// Samples the request's next token from its logits row; false once it is finished (and reported).
    private func consume(_ r: Running, logits: UnsafeBufferPointer<Float>) -> Bool {
        let isPrefill = r.input.count == r.job.promptIds.count && r.cache.count == r.job.promptIds.count
        if isPrefill {
            r.prefillSeconds = Date().timeIntervalSince(r.submitted)
            r.decodeStart = Date()
        }
        if r.finalOnly {
            finish(r)
            return false
        }
        r.state.pending = nil
        if scratch.count != logits.count { scratch = [Float](repeating: 0, count: logits.count) }
        let next = r.state.step(logits: logits, scratch: &scratch, cacheFull: r.cache.count >= r.cache.capacity,
                                onToken: r.job.onToken)
        if let id = next {
            r.input = [id]
            return true
        }
        if r.job.options.processFinalToken, let id = r.state.pending, r.cache.count < r.cache.capacity {
            // one more pass so the hooks see the last token's own state
            r.input = [id]
            r.finalOnly = true
            return true
        }
        finish(r)
        return false
    }

    private func finish(_ r: Running) {
        r.job.onFinish(.success(r.state.result(prefillSeconds: r.prefillSeconds, decodeSeconds: Date().timeIntervalSince(r.decodeStart))))
    }
}
