import Foundation

/// Turns a `--model` argument into a path the model loader accepts.
public enum ModelReference {
    /// Order: an existing folder or file on disk (`~` expanded) wins; otherwise a Hub id
    /// `org/name[/file][@revision]` resolved from the local cache only (no network, so
    /// `HF_HUB_OFFLINE` needs no special case); anything else is an error naming `arg`.
    public static func resolve(_ arg: String, environment: HubEnvironment = .fromEnvironment()) throws -> URL {
        let trimmed = arg.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw HubError(.invalidID, "--model is empty: give a model folder, a .gguf file or a Hub id org/name[@revision]") }
        let expanded = (trimmed as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) { return URL(fileURLWithPath: expanded) }
        let looksLikePath = trimmed.hasPrefix("/") || trimmed.hasPrefix(".") || trimmed.hasPrefix("~")
        guard !looksLikePath, let id = HubID(parsing: trimmed) else {
            throw HubError(.invalidID, "\(arg): no such file or folder, and not a Hugging Face model id (org/name[@revision])")
        }
        do {
            return try HubCache(root: environment.cacheRoot).resolve(id)
        } catch let e as HubError where e.kind == .notCached {
            // Also a plausible mistyped path: say both.
            throw HubError(.notCached, "\(arg): no such file or folder; as a Hub id: \(e.description)")
        }
    }
}
