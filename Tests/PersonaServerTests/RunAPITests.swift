import Foundation
import Hummingbird
import HummingbirdTesting
import PersonaRuns
import XCTest
@testable import PersonaServer

/// /api routes other than generation, the dashboard files, auth and request limits.
final class RunAPITests: XCTestCase {
    func sampleRun(_ id: String = "run-a", prompt: String = "Tell me a story", happy: [Double] = [0.1, 0.9, 0.3]) -> RunDocument {
        RunDocument(id: id, created: "2026-11-27T01:00:00Z", model: ModelRef(id: "m"), prompt: prompt, response: "a b c",
                    tokens: ["a", " b", " c"], tokenIds: [1, 2, 3], traitScores: ["happy": happy, "sad": [0, 0, 0.5]])
    }

    func testHealthModelTraits() async throws {
        try await makeApp().test(.router) { client in
            let h = try json(try await client.execute(uri: "/api/health", method: .get).body)
            XCTAssertEqual(h["status"] as? String, "ok")
            XCTAssertEqual(h["model_loaded"] as? Bool, true)
            XCTAssertEqual(h["runs"] as? Int, 0)
            let m = try json(try await client.execute(uri: "/api/model", method: .get).body)
            XCTAssertEqual(m["id"] as? String, "fake-model")
            XCTAssertEqual(m["layers"] as? Int, 4)
            XCTAssertEqual(m["context_length"] as? Int, 512)
            let t = try json(try await client.execute(uri: "/api/traits", method: .get).body)
            let traits = try XCTUnwrap(t["traits"] as? [[String: Any]])
            XCTAssertEqual(traits.map { $0["name"] as? String }, ["happy", "sad"])
            XCTAssertEqual(traits.first?["hook_point"] as? String, "blocks.1.hook_resid_post")
        }
        try await makeApp(backend: nil).test(.router) { client in
            let h = try json(try await client.execute(uri: "/api/health", method: .get).body)
            XCTAssertEqual(h["model_loaded"] as? Bool, false)
            let m = try json(try await client.execute(uri: "/api/model", method: .get).body)
            XCTAssertEqual(m["loaded"] as? Bool, false)
            let t = try json(try await client.execute(uri: "/api/traits", method: .get).body)
            XCTAssertEqual((t["traits"] as? [Any])?.count, 0)
        }
    }

    func testRunLifecycle() async throws {
        let run = sampleRun()
        try await makeApp().test(.router) { client in
            let post = try await client.execute(uri: "/api/runs", method: .post, headers: jsonHeaders, body: body(try run.jsonData()))
            XCTAssertEqual(post.status, .created, text(post.body))
            XCTAssertEqual(try json(post.body)["ids"] as? [String], ["run-a"])

            let list = try json(try await client.execute(uri: "/api/runs", method: .get).body)
            XCTAssertEqual(list["total"] as? Int, 1)
            let s = try XCTUnwrap((list["runs"] as? [[String: Any]])?.first)
            XCTAssertEqual(s["id"] as? String, "run-a")
            XCTAssertEqual(s["prompt"] as? String, "Tell me a story")
            XCTAssertEqual(s["model"] as? String, "m")
            XCTAssertEqual(s["num_tokens"] as? Int, 3)
            XCTAssertEqual(s["traits"] as? [String], ["happy", "sad"])
            XCTAssertEqual(s["max_scores"] as? [String: Double], ["happy": 0.9, "sad": 0.5])

            let got = try await client.execute(uri: "/api/runs/run-a", method: .get)
            XCTAssertEqual(got.status, .ok)
            XCTAssertEqual(try JSONDecoder().decode(RunDocument.self, from: Data(got.body.readableBytesView)), run)

            let csv = try await client.execute(uri: "/api/runs/run-a/export?format=csv", method: .get)
            XCTAssertEqual(csv.headers[.contentType], "text/csv; charset=utf-8")
            XCTAssertEqual(csv.headers[.contentDisposition], "attachment; filename=\"run-run-a.csv\"")
            XCTAssertEqual(text(csv.body).components(separatedBy: "\r\n").first, "index,token,token_id,logprob,happy,sad")
            let pt = try await client.execute(uri: "/api/runs/run-a/export?format=pertoken", method: .get)
            let entries = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(pt.body.readableBytesView)) as? [[String: Any]])
            XCTAssertEqual((entries.first?["projections"] as? [String: [Double]])?["happy"], [0.1, 0.9, 0.3])
            let js = try await client.execute(uri: "/api/runs/run-a/export", method: .get)
            XCTAssertEqual(try json(js.body)["schema"] as? String, "personascope.run/1")
            try assertErrorShape(try await client.execute(uri: "/api/runs/run-a/export?format=xml", method: .get), .badRequest)

            let del = try await client.execute(uri: "/api/runs/run-a", method: .delete)
            XCTAssertEqual(del.status, .ok)
            let m1 = try assertErrorShape(try await client.execute(uri: "/api/runs/run-a", method: .get), .notFound)
            XCTAssertEqual(m1, "no run with id run-a")
            try assertErrorShape(try await client.execute(uri: "/api/runs/run-a", method: .delete), .notFound)
            try assertErrorShape(try await client.execute(uri: "/api/runs/run-a/export", method: .get), .notFound)
        }
    }

    func testSearchAndPaging() async throws {
        let store = InMemoryRunStore()
        try await store.save([sampleRun("r1", prompt: "happy dog", happy: [0, 2, 1]),
                              sampleRun("r2", prompt: "sad 100% cat", happy: [0, 0.5, 0]),
                              sampleRun("r3", prompt: "another DOG", happy: [3, 0, 0])])
        try await makeApp(store: store).test(.router) { client in
            func ids(_ q: String) async throws -> [String] {
                let r = try await client.execute(uri: "/api/runs" + q, method: .get)
                XCTAssertEqual(r.status, .ok, text(r.body))
                return try XCTUnwrap(try json(r.body)["runs"] as? [[String: Any]]).compactMap { $0["id"] as? String }
            }
            let all = try await ids("")
            XCTAssertEqual(Set(all), ["r1", "r2", "r3"])
            let dogs = try await ids("?q=dog")
            XCTAssertEqual(Set(dogs), ["r1", "r3"])
            let pct = try await ids("?q=100%25")
            XCTAssertEqual(pct, ["r2"])
            let high = try await ids("?trait=happy&min_score=1.5")
            XCTAssertEqual(Set(high), ["r1", "r3"])
            let none = try await ids("?trait=evil")
            XCTAssertEqual(none, [])
            let page1 = try await ids("?limit=2"), page2 = try await ids("?limit=2&offset=2")
            XCTAssertEqual(page1.count, 2)
            XCTAssertEqual(Set(page1 + page2), ["r1", "r2", "r3"])

            for (q, word) in [("?limit=abc", "limit"), ("?limit=0", "limit"), ("?limit=100000", "limit"), ("?offset=-1", "offset"),
                              ("?min_score=high", "min_score"), ("?min_score=nan", "min_score")] {
                let m = try assertErrorShape(try await client.execute(uri: "/api/runs" + q, method: .get), .badRequest)
                XCTAssertTrue(m.hasPrefix(word), m)
            }
        }
    }

    func testImportReferenceFilesViaPOST() async throws {
        let dir = "reference/trait-interp/pertoken_results/"
        try await makeApp().test(.router) { client in
            for (name, count) in [("pilot_results.json", 18), ("contaminated_results.json", 10), ("layer_comparison.json", 18)] {
                let data = try Data(contentsOf: try requireShared(dir + name))
                let r = try await client.execute(uri: "/api/runs", method: .post, headers: jsonHeaders, body: body(data))
                XCTAssertEqual(r.status, .created, name)
                XCTAssertEqual(try json(r.body)["count"] as? Int, count, name)
            }
            let summary = try Data(contentsOf: try requireShared(dir + "analysis_summary.json"))
            let m = try assertErrorShape(try await client.execute(uri: "/api/runs", method: .post, body: body(summary)), .badRequest)
            XCTAssertTrue(m.hasPrefix("request body: not a run file"), m)

            let list = try json(try await client.execute(uri: "/api/runs?limit=500", method: .get).body)
            XCTAssertEqual(list["total"] as? Int, 46)

            // Count, straight from the file with JSONSerialization, the pilot entries whose max evil score is >= 1.
            let pilot = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: try requireShared(dir + "pilot_results.json"))) as? [[String: Any]])
            let expected = pilot.filter { (($0["projections"] as? [String: [Double]])?["evil"]?.max() ?? -.infinity) >= 1 }.count
            let contaminated = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: try requireShared(dir + "contaminated_results.json"))) as? [[String: Any]])
            let layers = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: try requireShared(dir + "layer_comparison.json"))) as? [String: [[String: Any]]])
            let others = (contaminated + layers.values.flatMap { $0 }).filter {
                (($0["projections"] as? [String: [Double]])?["evil"]?.max() ?? -.infinity) >= 1
            }.count
            let hits = try json(try await client.execute(uri: "/api/runs?trait=evil&min_score=1&limit=500", method: .get).body)
            XCTAssertEqual(hits["total"] as? Int, expected + others)
            XCTAssertGreaterThan(expected + others, 0)

            let q = try json(try await client.execute(uri: "/api/runs?q=Python&limit=500", method: .get).body)
            XCTAssertGreaterThan(q["total"] as? Int ?? 0, 0)
        }
    }

    func testMalformedAndOversizedBodies() async throws {
        var config = ServerConfig(port: 0)
        config.maxBodyBytes = 1024
        try await makeApp(config).test(.router) { client in
            let m = try assertErrorShape(try await client.execute(uri: "/api/runs", method: .post, body: body("{\"tokens\": [")), .badRequest)
            XCTAssertTrue(m.contains("not valid JSON"), m)
            try assertErrorShape(try await client.execute(uri: "/api/runs", method: .post, body: body("[]")), .badRequest)
            try assertErrorShape(try await client.execute(uri: "/api/generate", method: .post, body: body("{nope")), .badRequest)
            let big = String(repeating: " ", count: 2000) + "{}"
            try assertErrorShape(try await client.execute(uri: "/api/runs", method: .post, body: body(big)), .contentTooLarge)
            try assertErrorShape(try await client.execute(uri: "/v1/chat/completions", method: .post, body: body(big)), .contentTooLarge)
            let bad = try assertErrorShape(try await client.execute(uri: "/api/runs/bad%20id!", method: .get), .badRequest)
            XCTAssertTrue(bad.hasPrefix("id:"), bad)
            try assertErrorShape(try await client.execute(uri: "/api/nothing", method: .get), .notFound)
        }
    }

    func testAuthGuardsAPIButNotDashboard() async throws {
        var config = ServerConfig(port: 0)
        config.apiKey = "s3cret-key"
        try await makeApp(config).test(.router) { client in
            for uri in ["/api/health", "/api/runs", "/v1/models"] {
                let r = try await client.execute(uri: uri, method: .get)
                try assertErrorShape(r, .unauthorized)
                XCTAssertEqual(r.headers[.wwwAuthenticate], "Bearer")
                XCTAssertFalse(text(r.body).contains("s3cret"))
                try assertErrorShape(try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer wrong"]), .unauthorized)
                try assertErrorShape(try await client.execute(uri: uri, method: .get, headers: [.authorization: "s3cret-key"]), .unauthorized)
                let ok = try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer s3cret-key"])
                XCTAssertEqual(ok.status, .ok, uri)
            }
            try assertErrorShape(try await client.execute(uri: "/api/generate", method: .post, body: body("{}")), .unauthorized)
            let page = try await client.execute(uri: "/", method: .get)
            XCTAssertEqual(page.status, .ok)
        }
    }

    func testDashboardFilesAndNoTraversal() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dash-\(UUID().uuidString)")
        let dash = root.appendingPathComponent("Dashboard")
        try FileManager.default.createDirectory(at: dash.appendingPathComponent("js"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("<!doctype html><title>t</title>".utf8).write(to: dash.appendingPathComponent("index.html"))
        try Data("body{}".utf8).write(to: dash.appendingPathComponent("style.css"))
        try Data("let x = 1".utf8).write(to: dash.appendingPathComponent("js/app.js"))
        try Data("secret".utf8).write(to: root.appendingPathComponent("secret.txt"))
        try FileManager.default.createSymbolicLink(at: dash.appendingPathComponent("link.txt"), withDestinationURL: root.appendingPathComponent("secret.txt"))
        var config = ServerConfig(port: 0)
        config.dashboardDirectory = dash
        try await makeApp(config).test(.router) { client in
            let index = try await client.execute(uri: "/", method: .get)
            XCTAssertEqual(index.status, .ok)
            XCTAssertEqual(index.headers[.contentType], "text/html; charset=utf-8")
            XCTAssertTrue(text(index.body).hasPrefix("<!doctype html>"))
            let css = try await client.execute(uri: "/style.css", method: .get)
            XCTAssertEqual(css.headers[.contentType], "text/css; charset=utf-8")
            let js = try await client.execute(uri: "/js/app.js", method: .get)
            XCTAssertEqual(text(js.body), "let x = 1")
            for uri in ["/../secret.txt", "/%2e%2e/secret.txt", "/js/../../secret.txt", "/link.txt", "/..%2fsecret.txt", "//etc/passwd"] {
                let r = try await client.execute(uri: uri, method: .get)
                XCTAssertEqual(r.status, .notFound, uri)
                XCTAssertFalse(text(r.body).contains("secret\""), uri)
            }
        }
        // The bundled dashboard is served too.
        try await makeApp().test(.router) { client in
            let index = try await client.execute(uri: "/", method: .get)
            XCTAssertEqual(index.status, .ok)
            XCTAssertTrue(text(index.body).lowercased().contains("<html"))
        }
    }

    func testCORSOffByDefault() async throws {
        try await makeApp().test(.router) { client in
            let r = try await client.execute(uri: "/api/health", method: .get, headers: [.origin: "http://evil.example"])
            XCTAssertNil(r.headers[.accessControlAllowOrigin])
        }
        var config = ServerConfig(port: 0)
        config.corsAllowOrigin = "http://localhost:5173"
        try await makeApp(config).test(.router) { client in
            let r = try await client.execute(uri: "/api/health", method: .get, headers: [.origin: "http://localhost:5173"])
            XCTAssertEqual(r.headers[.accessControlAllowOrigin], "http://localhost:5173")
        }
    }
}
