import Foundation
import PersonaResources
import Hummingbird
import Logging
import PersonaRuns

/// The version string reported by /api/health.
public let personaServerVersion = "0.1.0"

/// Builds the server: dashboard, run API, live generation (SSE) and the OpenAI-compatible API.
/// `backend` is nil when no model is loaded: the run API and dashboard still work, generation answers 503.
public func buildApplication(_ config: ServerConfig, backend: (any GenerationBackend)?, store: any RunStore,
                             logger: Logger = Logger(label: "persona.server")) async throws -> some ApplicationProtocol {
    let router = try buildRouter(config, backend: backend, store: store)
    return Application(router: router,
                       configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
                       logger: logger)
}

/// The router alone (what `buildApplication` serves), for embedding or tests.
public func buildRouter(_ config: ServerConfig, backend: (any GenerationBackend)?, store: any RunStore) throws -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    if let origin = config.corsAllowOrigin {
        router.add(middleware: CORSMiddleware(allowOrigin: .custom(origin), allowHeaders: [.contentType, .authorization],
                                              allowMethods: [.get, .post, .delete, .options]))
    }
    router.add(middleware: AuthMiddleware(apiKey: config.apiKey))
    let dashboard = config.dashboardDirectory ?? ResourceLocator.folder(
        bundle: "PersonaScope_PersonaServer", subpath: "Dashboard",
        source: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/Dashboard"))
    router.add(middleware: StaticFilesMiddleware(files: StaticFilesMiddleware<BasicRequestContext>.load(root: dashboard)))
    let api = APIRoutes(config: config, backend: backend, store: store,
                        limiter: GenerationLimiter(maxActive: config.maxConcurrentGenerations, maxQueued: config.maxQueuedGenerations))
    api.add(to: router)
    OpenAIRoutes(api: api).add(to: router)
    return router
}
