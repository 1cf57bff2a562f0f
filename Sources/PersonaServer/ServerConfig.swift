import Foundation

/// Server settings. The defaults are safe for a laptop: loopback only, no CORS, small limits.
public struct ServerConfig: Sendable {
    public var host: String
    public var port: Int
    /// When set, every /api and /v1 route requires `Authorization: Bearer <apiKey>` (static files stay open).
    public var apiKey: String?
    /// Largest request body accepted (413 above).
    public var maxBodyBytes: Int
    /// Largest `max_tokens` a request may ask for (400 above).
    public var maxTokensPerRequest: Int
    /// Generations running at once.
    public var maxConcurrentGenerations: Int
    /// Generations allowed to wait for a slot; more get 429 with Retry-After.
    public var maxQueuedGenerations: Int
    /// Seconds suggested in Retry-After.
    public var retryAfterSeconds: Int
    /// Origin allowed by CORS (e.g. "http://localhost:5173"); nil (the default) sends no CORS headers.
    public var corsAllowOrigin: String?
    /// Dashboard folder to serve; nil serves the one bundled with this module.
    public var dashboardDirectory: URL?
    /// Largest `limit` for GET /api/runs.
    public var maxPageSize: Int
    /// Steering for /v1 requests that give none of their own (`serve --steer`): for clients that cannot send a
    /// `persona` object, such as a benchmark harness. Not applied to /api/generate (the dashboard steers itself).
    public var defaultSteer: [APISteer] = []

    public init(host: String = "127.0.0.1", port: Int = 8000, apiKey: String? = nil, maxBodyBytes: Int = 8 << 20,
                maxTokensPerRequest: Int = 4096, maxConcurrentGenerations: Int = 1, maxQueuedGenerations: Int = 4,
                retryAfterSeconds: Int = 5, corsAllowOrigin: String? = nil, dashboardDirectory: URL? = nil, maxPageSize: Int = 500) {
        self.host = host; self.port = port; self.apiKey = apiKey; self.maxBodyBytes = maxBodyBytes
        self.maxTokensPerRequest = maxTokensPerRequest; self.maxConcurrentGenerations = maxConcurrentGenerations
        self.maxQueuedGenerations = maxQueuedGenerations; self.retryAfterSeconds = retryAfterSeconds
        self.corsAllowOrigin = corsAllowOrigin; self.dashboardDirectory = dashboardDirectory; self.maxPageSize = maxPageSize
    }

    /// True when the host is reachable from other machines (the CLI should then insist on an API key).
    public var isExposed: Bool { !["127.0.0.1", "localhost", "::1"].contains(host) }
}
