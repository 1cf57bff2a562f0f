import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small async layer over URLSession's delegate API: streamed bodies (written to disk as they
/// arrive), and requests whose redirects are returned instead of followed (to read the Hub's headers).
final class HTTPSession: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private final class TaskState {
        let followRedirects: Bool
        let onResponse: (HTTPURLResponse) -> Bool   // false: cancel the task
        let onData: (Data) throws -> Void
        var response: HTTPURLResponse?
        var refused = false
        var failure: Error?
        var continuation: CheckedContinuation<HTTPURLResponse, Error>?
        init(followRedirects: Bool, onResponse: @escaping (HTTPURLResponse) -> Bool, onData: @escaping (Data) throws -> Void) {
            self.followRedirects = followRedirects
            self.onResponse = onResponse
            self.onData = onData
        }
    }

    private var session: URLSession!
    private var tasks: [Int: TaskState] = [:]
    private let lock = NSLock()

    init(timeout: TimeInterval = 60) {
        super.init()
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = timeout
        config.timeoutIntervalForResource = 7 * 24 * 3600
        config.httpMaximumConnectionsPerHost = 8
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        config.urlCache = nil
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        session = URLSession(configuration: config, delegate: self, delegateQueue: queue)
    }

    func invalidate() { session.finishTasksAndInvalidate() }

    /// Sends `request`; body bytes go to `onData` (after `onResponse` accepted the response).
    func send(_ request: URLRequest, followRedirects: Bool,
              onResponse: @escaping (HTTPURLResponse) -> Bool = { _ in true },
              onData: @escaping (Data) throws -> Void) async throws -> HTTPURLResponse {
        let task = session.dataTask(with: request)
        let state = TaskState(followRedirects: followRedirects, onResponse: onResponse, onData: onData)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<HTTPURLResponse, Error>) in
                lock.lock()
                state.continuation = c
                tasks[task.taskIdentifier] = state
                lock.unlock()
                task.resume()
            }
        } onCancel: {
            task.cancel()
        }
    }

    /// Sends `request` and collects the whole body (for small API answers and HEAD).
    func fetch(_ request: URLRequest, followRedirects: Bool) async throws -> (HTTPURLResponse, Data) {
        let box = DataBox()
        let response = try await send(request, followRedirects: followRedirects, onData: { box.data.append($0) })
        return (response, box.data)
    }

    private final class DataBox: @unchecked Sendable { var data = Data() }

    private func state(_ task: URLSessionTask) -> TaskState? {
        lock.lock(); defer { lock.unlock() }
        return tasks[task.taskIdentifier]
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        guard let st = state(task), st.followRedirects else { return completionHandler(nil) }
        // Credentials are for the Hub only, never for the storage host a redirect points to.
        var r = request
        if r.url?.host != task.originalRequest?.url?.host { r.setValue(nil, forHTTPHeaderField: "Authorization") }
        completionHandler(r)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let st = state(dataTask), let http = response as? HTTPURLResponse else { return completionHandler(.cancel) }
        st.response = http
        st.refused = !st.onResponse(http)
        completionHandler(st.refused ? .cancel : .allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let st = state(dataTask), st.failure == nil else { return }
        do { try st.onData(data) } catch {
            st.failure = error
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        lock.lock()
        let st = tasks.removeValue(forKey: task.taskIdentifier)
        lock.unlock()
        guard let st, let c = st.continuation else { return }
        if let f = st.failure { return c.resume(throwing: f) }
        // A response the caller refused (cancelled on purpose) is still returned: the caller reads its status.
        if let r = st.response, error == nil || st.refused { return c.resume(returning: r) }
        c.resume(throwing: error ?? URLError(.badServerResponse))
    }
}
