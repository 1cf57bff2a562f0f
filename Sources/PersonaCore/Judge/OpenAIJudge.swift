import Foundation
import PersonaHTTP

/// On-disk judgment cache: one small JSON file per sha256(model, prompt), written atomically,
/// so a rerun of the same judgments sends no request.
public final class JudgeCache: @unchecked Sendable {
    public let directory: URL

    public init(directory: URL) throws {
        self.directory = directory
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw TraitError("\(directory.path): cannot create judge cache folder (\(error.localizedDescription))")
        }
    }

    public static func key(model: String, prompt: String) -> String {
        // Length-prefix the model so (model, prompt) pairs can never collide by concatenation.
        SHA256.hex("\(model.utf8.count):\(model)\n\(prompt)")
    }

    private func url(_ key: String) -> URL {
        directory.appendingPathComponent(String(key.prefix(2))).appendingPathComponent(key + ".json")
    }

    /// `.some(score)` when cached (score may be nil: the judge answered without enough number mass).
    public func lookup(model: String, prompt: String) -> Double?? {
        let k = Self.key(model: model, prompt: prompt)
        guard let data = try? Data(contentsOf: url(k)),
              let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        if obj["score"] is NSNull { return .some(nil) }
        // NSNumber, not `as? Double`: on Linux a whole number read back from JSON does not bridge to Double.
        if let s = obj["score"] as? NSNumber { return .some(s.doubleValue) }
        return nil
    }

    public func store(model: String, prompt: String, score: Double?) throws {
        let k = Self.key(model: model, prompt: prompt)
        let u = url(k)
        try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
        let obj: [String: Any] = ["model": model, "score": score.map { $0 as Any } ?? NSNull()]
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        try data.write(to: u, options: .atomic)
    }
}

/// Limits how many requests run at once.
actor AsyncLimiter {
    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []
    init(_ n: Int) { available = max(1, n) }
    func acquire() async {
        if available > 0 { available -= 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }
    func release() {
        if waiters.isEmpty { available += 1 } else { waiters.removeFirst().resume() }
    }
}

/// One request per key at a time: callers asking for a key already being fetched wait for that fetch. Two samples
/// with the same answer give the same judge prompt (steering at two rows often leaves an answer unchanged); both
/// used to be sent when judged at the same time, and one when judged in turn (the second hit the cache), so the
/// number of requests, and what a paid judge costs, depended on timing.
actor InFlightRequests<Value: Sendable> {
    private var running: [String: Task<Value, Error>] = [:]

    /// The value for `key`, and whether it came from another caller's fetch.
    func value(_ key: String, _ fetch: @escaping @Sendable () async throws -> Value) async throws -> (Value, shared: Bool) {
        if let t = running[key] { return (try await t.value, true) }
        let t = Task { try await fetch() }
        running[key] = t
        defer { running[key] = nil }
        return (try await t.value, false)
    }
}

/// Counts requests and cache hits (for reports and tests).
public final class JudgeCounters: @unchecked Sendable {
    private let lock = NSLock()
    private var _requests = 0, _cacheHits = 0, _retries = 0
    private var _lastRetryReason: String?
    /// Why the most recent retry happened (e.g. "HTTP 429", "network error -1001: ...").
    public var lastRetryReason: String? { lock.lock(); defer { lock.unlock() }; return _lastRetryReason }
    func noteRetry(_ reason: String) { lock.lock(); _retries += 1; _lastRetryReason = reason; lock.unlock() }
    public var requests: Int { lock.lock(); defer { lock.unlock() }; return _requests }
    public var cacheHits: Int { lock.lock(); defer { lock.unlock() }; return _cacheHits }
    public var retries: Int { lock.lock(); defer { lock.unlock() }; return _retries }
    func add(requests: Int = 0, cacheHits: Int = 0, retries: Int = 0) {
        lock.lock(); _requests += requests; _cacheHits += cacheHits; _retries += retries; lock.unlock()
    }
}

/// A judge behind any OpenAI-compatible `/chat/completions` endpoint (vLLM, llama.cpp server, Ollama,
/// `persona serve`, OpenAI): max_tokens=1, temperature=0, logprobs with top_logprobs=20, scored with
/// `JudgeAggregation`. Retries 429 / 5xx / timeouts / connection errors with exponential back-off and
/// jitter (Retry-After honoured), bounded concurrency, optional on-disk cache.
public final class OpenAIJudge: Judge, @unchecked Sendable {
    public struct Configuration: Sendable {
        /// e.g. http://localhost:8000/v1 (the client appends /chat/completions).
        public var baseURL: URL
        public var model: String
        public var apiKey: String?
        public var maxAttempts = 5
        /// Back-off before retry n (1-based) is baseDelay * 2^(n-1) plus up to 50% jitter, at most maxDelay.
        public var baseDelay: Double = 1
        public var maxDelay: Double = 60
        /// Per-request timeout in seconds (at least 1: swift-corelibs-foundation times out at once below 1 s).
        public var timeout: Double = 60
        public var concurrency = 8
        public var topLogprobs = 20

        public init(baseURL: URL, model: String, apiKey: String? = nil) {
            self.baseURL = baseURL
            self.model = model
            self.apiKey = apiKey
        }

        /// OPENAI_BASE_URL (default https://api.openai.com/v1), OPENAI_API_KEY, PERSONA_JUDGE_MODEL (default gpt-4.1-mini);
        /// explicit arguments win.
        public static func fromEnvironment(baseURL: String? = nil, model: String? = nil, apiKey: String? = nil,
                                           environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
            let base = baseURL ?? environment["OPENAI_BASE_URL"] ?? "https://api.openai.com/v1"
            guard let url = URL(string: base), url.scheme == "http" || url.scheme == "https" else {
                throw TraitError("judge base URL '\(base)' is not an http(s) URL")
            }
            let m = model ?? environment["PERSONA_JUDGE_MODEL"] ?? "gpt-4.1-mini"
            return Configuration(baseURL: url, model: m, apiKey: apiKey ?? environment["OPENAI_API_KEY"])
        }
    }

    public let configuration: Configuration
    public let cache: JudgeCache?
    public let counters = JudgeCounters()
    private let limiter: AsyncLimiter
    private let session: HTTPSession
    private let inFlight = InFlightRequests<Double?>()

    public init(_ configuration: Configuration, cache: JudgeCache? = nil) {
        self.configuration = configuration
        self.cache = cache
        limiter = AsyncLimiter(configuration.concurrency)
        session = HTTPSession(timeout: max(1, configuration.timeout), maxConnectionsPerHost: max(1, configuration.concurrency))
    }

    public var name: String { configuration.model }

    public func score(prompt: String) async throws -> Double? {
        // the cache is read inside the in-flight fetch, so a caller arriving just after a fetch finished finds its score
        let (score, shared) = try await inFlight.value(JudgeCache.key(model: configuration.model, prompt: prompt)) { [self] in
            if let cached = cache?.lookup(model: configuration.model, prompt: prompt) {
                counters.add(cacheHits: 1)
                return cached
            }
            await limiter.acquire()
            let result: Result<(score: Double?, cacheable: Bool), Error>
            do { result = .success(try await requestWithRetries(prompt)) } catch { result = .failure(error) }
            await limiter.release()
            let r = try result.get()
            if r.cacheable { try? cache?.store(model: configuration.model, prompt: prompt, score: r.score) }
            return r.score
        }
        if shared { counters.add(cacheHits: 1) }
        return score
    }

    /// One scoring request before the work starts, not cached and not retried, so that a wrong URL, key or model
    /// name, or a server that gives no logprobs, is found before hours of generation rather than after them.
    /// Throws for a network error, an HTTP 4xx other than 429, and a reply without the first token's
    /// top_logprobs (every score would be missing and every pair dropped); 429 and 5xx pass, as transient (the
    /// real requests retry them). Returns warnings about what the reply shows of the judge: asked to reply 85,
    /// a judge whose top tokens hold digits but no number of two digits spells numbers digit by digit (Qwen,
    /// Mistral, Gemma, SmolLM2 behind vLLM or llama.cpp's server), so every first-token score would read 85 as 8
    /// and the trait filter (>= 50) would pass nothing; and one that puts under a quarter of its probability on
    /// numbers would leave most scores missing.
    @discardableResult
    public func preflight() async throws -> [String] {
        let req = try makeRequest(Self.preflightPrompt)
        let url = req.url.absoluteString
        counters.add(requests: 1)
        let data: Data, http: HTTPResponse
        do { (data, http) = try await send(req) } catch {
            if error is CancellationError { throw error }
            throw JudgeError("\(url): not reachable (\(error))")
        }
        switch http.statusCode {
        case 200..<300:
            guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw JudgeError("\(url): response is not a JSON object")
            }
            guard let top = Self.topLogprobs(obj) else {
                throw JudgeError("\(url): the reply has no logprobs for its first token; the judge reads its score from "
                                 + "top_logprobs, so the server must accept \"logprobs\": true and \"top_logprobs\": \(configuration.topLogprobs)")
            }
            let numbers = top.compactMap { t in JudgeAggregation.number(t.token).map { (value: $0, p: Foundation.exp(t.logprob)) } }
            if !numbers.isEmpty, numbers.allSatisfy({ $0.value < 10 }) {
                return ["\(configuration.model) at \(url), asked to reply 85, has only single digits among its top tokens "
                        + "(\(numbers.prefix(4).map { "\"\($0.value)\"" }.joined(separator: ", "))): it spells numbers digit by digit, "
                        + "and a score read from the first token takes 85 as 8, so no answer would reach the trait threshold. "
                        + "Use a judge with a token per number (OpenAI's models, Llama 3), or --judge local with a model file, "
                        + "which follows the digits."]
            }
            let mass = numbers.reduce(0) { $0 + $1.p }
            if mass < JudgeAggregation.minimumMass {
                return [String(format: "%@ at %@, asked to reply 85, put %.0f%% of its first-token probability on numbers "
                               + "0-100; a score needs %.0f%%, so many answers may get none.",
                               configuration.model, url, 100 * mass, 100 * JudgeAggregation.minimumMass)]
            }
            return []
        case 429, 500..<600:
            return []
        default:
            throw JudgeError("\(url): HTTP \(http.statusCode): \(String(decoding: data.prefix(300), as: UTF8.self))")
        }
    }

    /// A question whose answer is a two-digit number: a judge with a token per number answers "85" in one token.
    static let preflightPrompt = "Reply with the number 85 and nothing else."

    private func makeRequest(_ prompt: String) throws -> HTTPRequest {
        var req = HTTPRequest(url: configuration.baseURL.appendingPathComponent("chat/completions"), method: "POST")
        req.timeout = max(1, configuration.timeout) * 2
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let key = configuration.apiKey, !key.isEmpty { req.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        let body: [String: Any] = [
            "model": configuration.model,
            "messages": [["role": "user", "content": prompt]],
            "max_tokens": 1, "temperature": 0, "logprobs": true, "top_logprobs": configuration.topLogprobs,
        ]
        req.body = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        return req
    }

    private func send(_ req: HTTPRequest) async throws -> (Data, HTTPResponse) {
        let (http, data) = try await session.fetch(req, followRedirects: true)
        return (data, http)
    }

    private func requestWithRetries(_ prompt: String) async throws -> (score: Double?, cacheable: Bool) {
        let req = try makeRequest(prompt)
        let url = req.url.absoluteString
        var lastProblem = ""
        for attempt in 1...max(1, configuration.maxAttempts) {
            var retryAfter: Double? = nil
            do {
                counters.add(requests: 1)
                let (data, http) = try await send(req)
                switch http.statusCode {
                case 200..<300:
                    return try Self.parse(data, source: url)
                case 429, 500..<600:
                    lastProblem = "HTTP \(http.statusCode)"
                    if let ra = http.value(forHTTPHeaderField: "Retry-After"), let s = Double(ra.trimmingCharacters(in: .whitespaces)), s >= 0 {
                        retryAfter = s
                    }
                default:
                    let text = String(decoding: data.prefix(300), as: UTF8.self)
                    throw JudgeError("\(url): HTTP \(http.statusCode) (not retried): \(text)")
                }
            } catch let e as JudgeError {
                throw e
            } catch {
                // Timeouts, refused or dropped connections: retried.
                if error is CancellationError { throw error }
                lastProblem = "network error: \(error)"
            }
            if attempt == configuration.maxAttempts { break }
            counters.noteRetry(lastProblem)
            let backoff = configuration.baseDelay * pow(2, Double(attempt - 1))
            var delay = min(configuration.maxDelay, backoff * (1 + Double.random(in: 0..<0.5)))
            if let ra = retryAfter { delay = min(configuration.maxDelay, max(delay, ra)) }
            try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
        }
        throw JudgeError("\(url): giving up after \(configuration.maxAttempts) attempts (last: \(lastProblem))")
    }

    /// Extracts the first generated token's top_logprobs. Missing logprobs give nil (not cached: a server
    /// setting, not an answer); present ones give the aggregated score (cached, even when nil).
    static func parse(_ data: Data, source: String) throws -> (score: Double?, cacheable: Bool) {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw JudgeError("\(source): response is not a JSON object")
        }
        guard let pairs = topLogprobs(obj) else { return (nil, false) }
        return (JudgeAggregation.score(topLogprobs: pairs), true)
    }

    /// The first token's top_logprobs of a chat completion, or nil when the reply has none.
    static func topLogprobs(_ obj: [String: Any]) -> [(token: String, logprob: Double)]? {
        guard let choices = obj["choices"] as? [[String: Any]], let first = choices.first,
              let logprobs = first["logprobs"] as? [String: Any],
              let content = logprobs["content"] as? [[String: Any]], let tok = content.first,
              let top = tok["top_logprobs"] as? [[String: Any]] else {
            return nil
        }
        return top.compactMap { e in
            guard let t = e["token"] as? String, let lp = (e["logprob"] as? NSNumber)?.doubleValue else { return nil }
            return (t, lp)
        }
    }
}

public struct JudgeError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}
