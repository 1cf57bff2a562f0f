import Foundation

/// The settings huggingface_hub reads from the environment, with the same names and defaults.
public struct HubEnvironment: Sendable {
    /// Cache root: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    public var cacheRoot: URL
    /// `HF_ENDPOINT`, default https://huggingface.co.
    public var endpoint: URL
    /// `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else `HF_HOME/token`).
    public var token: String?
    /// `HF_HUB_OFFLINE` set to 1/true/yes/on: nothing touches the network.
    public var offline: Bool

    public init(cacheRoot: URL, endpoint: URL = URL(string: "https://huggingface.co")!, token: String? = nil, offline: Bool = false) {
        self.cacheRoot = cacheRoot
        self.endpoint = endpoint
        self.token = token
        self.offline = offline
    }

    /// Reads the variables from `env` (the process environment by default).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> HubEnvironment {
        func value(_ k: String) -> String? {
            guard let v = env[k]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        func path(_ s: String) -> URL { URL(fileURLWithPath: (s as NSString).expandingTildeInPath) }
        let home = value("HOME").map(path) ?? FileManager.default.homeDirectoryForCurrentUser
        let hfHome = value("HF_HOME").map(path)
            ?? value("XDG_CACHE_HOME").map { path($0).appendingPathComponent("huggingface") }
            ?? home.appendingPathComponent(".cache/huggingface")
        let cache = value("HF_HUB_CACHE").map(path) ?? hfHome.appendingPathComponent("hub")
        var endpoint = URL(string: "https://huggingface.co")!
        if let e = value("HF_ENDPOINT"), let u = URL(string: e.hasSuffix("/") ? String(e.dropLast()) : e) { endpoint = u }
        var token = value("HF_TOKEN")
        if token == nil {
            let file = value("HF_TOKEN_PATH").map(path) ?? hfHome.appendingPathComponent("token")
            if let s = try? String(contentsOf: file, encoding: .utf8) {
                let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
                if !t.isEmpty { token = t }
            }
        }
        let offline = ["1", "true", "yes", "on"].contains(value("HF_HUB_OFFLINE")?.lowercased() ?? "")
        return HubEnvironment(cacheRoot: cache, endpoint: endpoint, token: token, offline: offline)
    }
}
