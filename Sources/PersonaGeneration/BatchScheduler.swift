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
        let onPrompt: (([PromptTokenLogprob]) -> Void)?
        let onToken: (TokenEvent) -> Bool
        let onFinish: (Result<GenerationResult, Error>) -> Void
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
    /// `onPrompt` gets the scored prompt after the prefill pass when `options.promptLogprobs` asks for it.
    public func submit(promptIds: [Int], options: GenerationOptions, hooks: HookSet = HookSet(),
                       onPrompt: (([PromptTokenLogprob]) -> Void)? = nil,
                       onToken: @escaping (TokenEvent) -> Bool, onFinish: @escaping (Result<GenerationResult, Error>) -> Void) {
        let job = Job(promptIds: promptIds, options: options, hooks: hooks, onPrompt: onPrompt, onToken: onToken, onFinish: onFinish)
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
        let decoder = BatchDecoder(loaded: loaded)
        while true {
            condition.lock()
            while queue.isEmpty && decoder.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && decoder.isEmpty && stopping { condition.unlock(); return }
            let admitted = Array(queue.prefix(max(0, maxBatch - decoder.running.count)))
            queue.removeFirst(admitted.count)
            condition.unlock()
            for job in admitted {
                do {
                    try decoder.admit(promptIds: job.promptIds, options: job.options, hooks: job.hooks, label: "the prompt",
                                      onPrompt: job.onPrompt, onToken: job.onToken, onFinish: job.onFinish)
                } catch {
                    job.onFinish(.failure(error))   // a bad request, reported like any other failure
                }
            }
            // the callbacks here do not throw, and failing passes are isolated: nothing reaches this catch
            do { try decoder.step(isolateFailures: true) } catch {}
        }
    }
}
