import Foundation
import Hummingbird
import HummingbirdTesting
import PersonaRuns
import XCTest
@testable import PersonaServer

/// /v1 routes, checked against the field names and types of OpenAI's API reference
/// (chat.completion, chat.completion.chunk, text_completion, list/model, error).
final class OpenAITests: XCTestCase {
    func chat(_ s: String) -> ByteBuffer { body(s) }

    func checkEnvelope(_ o: [String: Any], object: String, idPrefix: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(o["object"] as? String, object, file: file, line: line)
        XCTAssertTrue((o["id"] as? String)?.hasPrefix(idPrefix) == true, "\(String(describing: o["id"]))", file: file, line: line)
        XCTAssertNotNil(o["created"] as? Int, file: file, line: line)
        XCTAssertEqual(o["model"] as? String, "fake-model", file: file, line: line)
        XCTAssertNotNil(o["choices"] as? [Any], file: file, line: line)
    }

    func checkUsage(_ o: [String: Any], completion: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let u = try XCTUnwrap(o["usage"] as? [String: Any], file: file, line: line)
        let p = try XCTUnwrap(u["prompt_tokens"] as? Int, file: file, line: line)
        XCTAssertEqual(p, 2, file: file, line: line)  // the fake's prompt has 2 tokens
        XCTAssertEqual(u["completion_tokens"] as? Int, completion, file: file, line: line)
        XCTAssertEqual(u["total_tokens"] as? Int, p + completion, file: file, line: line)
    }

    func testModels() async throws {
        try await makeApp().test(.router) { client in
            let o = try json(try await client.execute(uri: "/v1/models", method: .get).body)
            XCTAssertEqual(o["object"] as? String, "list")
            let m = try XCTUnwrap((o["data"] as? [[String: Any]])?.first)
            XCTAssertEqual(m["id"] as? String, "fake-model")
            XCTAssertEqual(m["object"] as? String, "model")
            XCTAssertNotNil(m["created"] as? Int)
            XCTAssertNotNil(m["owned_by"] as? String)
        }
    }

    func testChatCompletionWithLogprobsAndPersona() async throws {
        let backend = FakeBackend()
        try await makeApp(backend: backend).test(.router) { client in
            let r = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: jsonHeaders, body: chat("""
                {"model": "whatever", "messages": [{"role": "system", "content": "Be nice"},
                 {"role": "user", "content": [{"type": "text", "text": "Tell "}, {"type": "text", "text": "a story"}]}],
                 "max_tokens": 4, "temperature": 0.7, "top_p": 0.9, "seed": 7, "logprobs": true, "top_logprobs": 2,
                 "presence_penalty": 0, "user": "someone"}
                """))
            XCTAssertEqual(r.status, .ok, text(r.body))
            let o = try json(r.body)
            checkEnvelope(o, object: "chat.completion", idPrefix: "chatcmpl-")
            let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(choice["index"] as? Int, 0)
            XCTAssertEqual(choice["finish_reason"] as? String, "length")
            let msg = try XCTUnwrap(choice["message"] as? [String: Any])
            XCTAssertEqual(msg["role"] as? String, "assistant")
            XCTAssertEqual(msg["content"] as? String, " Once upon a time")
            let content = try XCTUnwrap((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
            XCTAssertEqual(content.count, 4)
            for (i, c) in content.enumerated() {
                XCTAssertEqual(c["token"] as? String, FakeBackend.words[i])
                XCTAssertEqual(try XCTUnwrap(c["logprob"] as? Double), -0.1 * Double(i + 1), accuracy: 1e-12)
                XCTAssertEqual(c["bytes"] as? [Int], Array(FakeBackend.words[i].utf8).map(Int.init))
                let top = try XCTUnwrap(c["top_logprobs"] as? [[String: Any]])
                XCTAssertEqual(top.count, 2)
                XCTAssertEqual(top[0]["token"] as? String, FakeBackend.words[i])
                XCTAssertNotNil(top[1]["logprob"] as? Double)
                XCTAssertNotNil(top[1]["bytes"] as? [Int])
            }
            try checkUsage(o, completion: 4)
            let persona = try XCTUnwrap(choice["persona"] as? [String: Any])
            let scores = try XCTUnwrap(persona["trait_scores"] as? [String: [Double]])
            XCTAssertEqual(scores["sad"], (0..<4).map { FakeBackend.score("sad", $0) })
            XCTAssertEqual(persona["layers"] as? [String: Int], ["happy": 2, "sad": 3])
            XCTAssertTrue(persona["run_id"] is NSNull)  // not saved unless persona.save is true

            let req = try XCTUnwrap(backend.requests.first)
            XCTAssertEqual(req.messages?.map(\.content), ["Be nice", "Tell a story"])
            XCTAssertEqual(req.raw, false)
            XCTAssertEqual(req.seed, 7)
            XCTAssertEqual(req.topP, 0.9)
            XCTAssertEqual(req.temperature, 0.7)
            XCTAssertEqual(req.topLogprobs, 2)
        }
    }

    /// The persona fields reach the backend from `persona` and from the top level (as /api/generate, vLLM and
    /// llama.cpp's server take them); before, a top-level `steer` or `top_k` was dropped without a word.
    func testPersonaFieldsInEitherPlace() async throws {
        let backend = FakeBackend()
        try await makeApp(backend: backend).test(.router) { client in
            let msgs = #""messages": [{"role": "user", "content": "x"}], "max_tokens": 2"#
            for extra in [#""persona": {"steer": [{"trait": "happy", "coef": 2, "positions": "response"}], "traits": ["sad"], "top_k": 5, "min_p": 0.1}"#,
                          #""steer": [{"trait": "happy", "coef": 2, "positions": "response"}], "traits": ["sad"], "top_k": 5, "min_p": 0.1"#,
                          #""top_k": 5, "min_p": 0.1, "traits": ["sad"], "persona": {"steer": [{"trait": "happy", "coef": 2, "positions": "response"}], "top_k": 5}"#] {
                let r = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: jsonHeaders, body: chat("{\(msgs), \(extra)}"))
                XCTAssertEqual(r.status, .ok, text(r.body))
                let req = try XCTUnwrap(backend.requests.last)
                XCTAssertEqual(req.steer, [APISteer(trait: "happy", coef: 2, positions: "response")], extra)
                XCTAssertEqual(req.traits, ["sad"], extra)
                XCTAssertEqual(req.topK, 5, extra)
                XCTAssertEqual(req.minP, 0.1, extra)
            }
            XCTAssertEqual(backend.requests.count, 3)
        }
    }

    /// The judge client's call: one token, greedy, 20 alternatives.
    func testJudgeStyleCall() async throws {
        let store = InMemoryRunStore()
        try await makeApp(store: store).test(.router) { client in
            let r = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: jsonHeaders, body: chat("""
                {"model": "m", "messages": [{"role": "user", "content": "Score 0-100"}], "max_tokens": 1, "temperature": 0,
                 "logprobs": true, "top_logprobs": 20}
                """))
            XCTAssertEqual(r.status, .ok, text(r.body))
            let o = try json(r.body)
            let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
            let content = try XCTUnwrap((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
            XCTAssertEqual(content.count, 1)
            let top = try XCTUnwrap(content[0]["top_logprobs"] as? [[String: Any]])
            XCTAssertEqual(top.count, 20)
            for t in top {
                XCTAssertNotNil(t["token"] as? String)
                XCTAssertLessThanOrEqual(try XCTUnwrap(t["logprob"] as? Double), 0)
            }
            try checkUsage(o, completion: 1)
        }
        let n = try await store.count()
        XCTAssertEqual(n, 0, "judge calls are not stored")
    }

    func testChatStreaming() async throws {
        let store = InMemoryRunStore()
        try await makeApp(store: store).test(.router) { client in
            let r = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: jsonHeaders, body: chat("""
                {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": true, "logprobs": true,
                 "stream_options": {"include_usage": true}, "persona": {"save": true}}
                """))
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "text/event-stream; charset=utf-8")
            let events = parseSSE(text(r.body))
            XCTAssertTrue(events.allSatisfy { $0.event == nil })
            XCTAssertEqual(events.last?.data, "[DONE]")
            let chunks = try events.dropLast().map { try jsonObject($0.data) }
            XCTAssertEqual(chunks.count, 1 + 3 + 1 + 1)  // role, 3 tokens, finish, usage
            var ids = Set<String>()
            for c in chunks {
                checkEnvelope(c, object: "chat.completion.chunk", idPrefix: "chatcmpl-")
                ids.insert(c["id"] as? String ?? "")
            }
            XCTAssertEqual(ids.count, 1, "every chunk has the same id")
            let choices = chunks.map { ($0["choices"] as? [[String: Any]]) ?? [] }
            XCTAssertEqual((choices[0].first?["delta"] as? [String: Any])?["role"] as? String, "assistant")
            var textOut = ""
            for i in 1...3 {
                let ch = try XCTUnwrap(choices[i].first)
                XCTAssertTrue(ch["finish_reason"] is NSNull)
                textOut += (ch["delta"] as? [String: Any])?["content"] as? String ?? ""
                let lp = try XCTUnwrap((ch["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
                XCTAssertEqual(lp.count, 1)
                let persona = try XCTUnwrap(ch["persona"] as? [String: Any])
                XCTAssertEqual(persona["token_index"] as? Int, i - 1)
                XCTAssertEqual((persona["trait_scores"] as? [String: [Double]])?["sad"], [FakeBackend.score("sad", i - 1)])
            }
            XCTAssertEqual(textOut, " Once upon a")
            let last = try XCTUnwrap(choices[4].first)
            XCTAssertEqual(last["finish_reason"] as? String, "length")
            XCTAssertEqual((last["delta"] as? [String: Any])?.count, 0)
            let runID = try XCTUnwrap((last["persona"] as? [String: Any])?["run_id"] as? String)
            XCTAssertEqual(choices[5].count, 0)
            try checkUsage(chunks[5], completion: 3)
            let stored = try await client.execute(uri: "/api/runs/\(runID)", method: .get)
            XCTAssertEqual(stored.status, .ok)
        }
    }

    /// Text the stream held back is sent after the tokens, even when it continues the last streamed Character
    /// (a combining mark after " a", the "\n" of a "\r\n"): the deltas add up to the response.
    func testStreamedContentEndsWithTheHeldBackText() async throws {
        for tail in ["\u{301}", "\u{301}!", "?"] {
            let backend = FakeBackend()
            backend.responseTail = tail
            try await makeApp(backend: backend).test(.router) { client in
                let r = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: jsonHeaders, body: chat("""
                    {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": true}
                    """))
                XCTAssertEqual(r.status, .ok)
                let chunks = try parseSSE(text(r.body)).dropLast().map { try jsonObject($0.data) }
                let content = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }
                XCTAssertTrue(content.joined().unicodeScalars.elementsEqual((" Once upon a" + tail).unicodeScalars),
                              "\(tail.debugDescription): \(content)")
            }
        }
    }

    /// frequency_penalty, presence_penalty and logit_bias reach the backend (OpenAI's ranges checked); a
    /// response_format other than text is refused rather than ignored.
    func testPenaltiesLogitBiasAndResponseFormat() async throws {
        let backend = FakeBackend()
        try await makeApp(backend: backend).test(.router) { client in
            let ok = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: jsonHeaders, body: chat("""
                {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "frequency_penalty": 0.5,
                 "presence_penalty": -0.25, "logit_bias": {"50": -100, " 7": 3.5}, "response_format": {"type": "text"}}
                """))
            XCTAssertEqual(ok.status, .ok, text(ok.body))
            let r = try XCTUnwrap(backend.requests.last)
            XCTAssertEqual(r.frequencyPenalty, 0.5)
            XCTAssertEqual(r.presencePenalty, -0.25)
            XCTAssertEqual(try r.logitBiasIds(), [50: -100, 7: 3.5])
            let refused: [(String, String)] = [
                (#""response_format": {"type": "json_object"}"#, "response_format"),
                (#""frequency_penalty": 2.5"#, "frequency_penalty"),
                (#""presence_penalty": -3"#, "presence_penalty"),
                (#""logit_bias": {"abc": 1}"#, "is not a token id"),
                (#""logit_bias": {"5": 101}"#, "token 5 must be from -100 to 100"),
            ]
            for (field, message) in refused {
                let bad = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: jsonHeaders, body: chat("""
                    {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, \(field)}
                    """))
                XCTAssertEqual(bad.status, .badRequest, field)
                XCTAssertTrue(text(bad.body).contains(message), text(bad.body))
            }
        }
    }

    func testCompletions() async throws {
        let backend = FakeBackend()
        try await makeApp(backend: backend).test(.router) { client in
            let r = try await client.execute(uri: "/v1/completions", method: .post, headers: jsonHeaders,
                                             body: body(#"{"model": "m", "prompt": "Once", "max_tokens": 5, "logprobs": 3, "stop": [" was"]}"#))
            XCTAssertEqual(r.status, .ok, text(r.body))
            let o = try json(r.body)
            checkEnvelope(o, object: "text_completion", idPrefix: "cmpl-")
            let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(choice["text"] as? String, " Once upon a time there")
            XCTAssertEqual(choice["index"] as? Int, 0)
            XCTAssertEqual(choice["finish_reason"] as? String, "length")
            let lp = try XCTUnwrap(choice["logprobs"] as? [String: Any])
            XCTAssertEqual(lp["tokens"] as? [String], Array(FakeBackend.words.prefix(5)))
            XCTAssertEqual((lp["token_logprobs"] as? [Double])?.count, 5)
            let top = try XCTUnwrap(lp["top_logprobs"] as? [[String: Double]])
            XCTAssertEqual(top.count, 5)
            XCTAssertEqual(top[0].count, 3)
            XCTAssertEqual(lp["text_offset"] as? [Int], [0, 5, 10, 12, 17])
            try checkUsage(o, completion: 5)
            XCTAssertNotNil(choice["persona"] as? [String: Any])
            XCTAssertEqual(backend.requests.first?.raw, true)
            XCTAssertEqual(backend.requests.first?.stop, [" was"])

            let stopped = try json(try await client.execute(uri: "/v1/completions", method: .post,
                                                            body: body(#"{"prompt": "Once", "max_tokens": 9, "stop": " a"}"#)).body)
            let sc = try XCTUnwrap((stopped["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(sc["finish_reason"] as? String, "stop")
            XCTAssertEqual(sc["text"] as? String, " Once upon")
            XCTAssertTrue(sc["logprobs"] is NSNull)
        }
    }

    func testCompletionsStreaming() async throws {
        try await makeApp().test(.router) { client in
            let r = try await client.execute(uri: "/v1/completions", method: .post,
                                             body: body(#"{"prompt": "Once", "max_tokens": 2, "stream": true, "logprobs": 1}"#))
            let events = parseSSE(text(r.body))
            XCTAssertEqual(events.last?.data, "[DONE]")
            let chunks = try events.dropLast().map { try jsonObject($0.data) }
            XCTAssertEqual(chunks.count, 3)
            for c in chunks { checkEnvelope(c, object: "text_completion", idPrefix: "cmpl-") }
            let texts = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first?["text"] as? String) }
            XCTAssertEqual(texts, [" Once", " upon", ""])
            let lp = try XCTUnwrap((chunks[0]["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any])
            XCTAssertEqual(lp["tokens"] as? [String], [" Once"])
            XCTAssertEqual((chunks[2]["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String, "length")
        }
    }

    /// Several prompts (token ids here) are one choice each, in order; `echo` puts each prompt before its answer,
    /// with null for the first token's logprob (nothing comes before it), the prompt's trait scores in `persona`,
    /// and usage summed over the prompts. Without logprobs the prompt is still echoed but not asked for alternatives.
    func testCompletionsEchoAndSeveralPrompts() async throws {
        let backend = FakeBackend()
        try await makeApp(backend: backend).test(.router) { client in
            let r = try await client.execute(uri: "/v1/completions", method: .post, headers: jsonHeaders,
                                             body: body(#"{"prompt": [[5, 6, 7], [8]], "max_tokens": 1, "logprobs": 1, "echo": true}"#))
            XCTAssertEqual(r.status, .ok, text(r.body))
            let o = try json(r.body)
            checkEnvelope(o, object: "text_completion", idPrefix: "cmpl-")
            let choices = try XCTUnwrap(o["choices"] as? [[String: Any]])
            XCTAssertEqual(choices.map { $0["index"] as? Int }, [0, 1])
            XCTAssertEqual(choices.map { $0["text"] as? String }, ["t5t6t7 Once", "t8 Once"])
            let lp = try XCTUnwrap(choices[0]["logprobs"] as? [String: Any])
            XCTAssertEqual(lp["tokens"] as? [String], ["t5", "t6", "t7", " Once"])
            let values = try XCTUnwrap(lp["token_logprobs"] as? [Any])
            XCTAssertTrue(values[0] is NSNull)
            XCTAssertEqual(values.dropFirst().map { $0 as? Double }, [-0.5, -1.0, -0.1])
            let top = try XCTUnwrap(lp["top_logprobs"] as? [Any])
            XCTAssertTrue(top[0] is NSNull)
            XCTAssertEqual(top[1] as? [String: Double], ["p0": -0.25])
            XCTAssertEqual(lp["text_offset"] as? [Int], [0, 2, 4, 6])
            let persona = try XCTUnwrap(choices[0]["persona"] as? [String: Any])
            XCTAssertEqual((persona["prompt_trait_scores"] as? [String: [Double]])?["happy"], [0, 1, 2])
            XCTAssertEqual((persona["trait_scores"] as? [String: [Double]])?["happy"]?.count, 1)
            let usage = try XCTUnwrap(o["usage"] as? [String: Int])
            XCTAssertEqual(usage, ["prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6])
            XCTAssertEqual(backend.requests.map(\.promptIds), [[5, 6, 7], [8]])
            XCTAssertEqual(backend.requests.map(\.promptLogprobs), [1, 1])
            XCTAssertEqual(backend.requests.map(\.raw), [true, true])

            // a text prompt is echoed as given; no logprobs asked: none reported, no alternatives computed
            let plain = try json(try await client.execute(uri: "/v1/completions", method: .post,
                                                          body: body(#"{"prompt": "Hi", "max_tokens": 0, "echo": true}"#)).body)
            let pc = try XCTUnwrap((plain["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(pc["text"] as? String, "Hi")
            XCTAssertTrue(pc["logprobs"] is NSNull)
            XCTAssertEqual(backend.requests.last?.promptLogprobs, 0)
            XCTAssertEqual(backend.requests.last?.maxTokens, 0)
            // without echo nothing is scored
            _ = try await client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": ["a", "b"], "max_tokens": 1}"#))
            XCTAssertEqual(backend.requests.suffix(2).map(\.promptLogprobs), [nil, nil])
            XCTAssertEqual(backend.requests.suffix(2).map(\.prompt), ["a", "b"])

            // streamed: per prompt, the echo chunk, the tokens, the finish chunk; then the summed usage
            let s = try await client.execute(uri: "/v1/completions", method: .post, body: body(
                #"{"prompt": ["a", "b"], "max_tokens": 1, "logprobs": 0, "echo": true, "stream": true, "stream_options": {"include_usage": true}}"#))
            let events = parseSSE(text(s.body))
            XCTAssertEqual(events.last?.data, "[DONE]")
            let chunks = try events.dropLast().map { try jsonObject($0.data) }
            let firsts = chunks.map { ($0["choices"] as? [[String: Any]])?.first }
            XCTAssertEqual(firsts.map { $0?["index"] as? Int }, [0, 0, 0, 1, 1, 1, nil])
            XCTAssertEqual(firsts.map { $0?["text"] as? String }, ["a", " Once", "", "b", " Once", "", nil])
            let echoed = try XCTUnwrap(firsts[3]?["logprobs"] as? [String: Any])
            XCTAssertEqual(echoed["tokens"] as? [String], ["<s>", "Hi"])
            XCTAssertEqual((chunks.last?["usage"] as? [String: Int])?["prompt_tokens"], 4)
        }
    }

    /// A seed is any 64-bit integer on both APIs: -5 and its two's complement 2^64 - 5 reach the model as the same
    /// seed, so the same sample. /api/generate used to refuse -5 as "not valid JSON"; the OpenAI routes refused 2^64 - 5.
    func testSeedsAreAny64BitInteger() async throws {
        let backend = FakeBackend()
        try await makeApp(backend: backend).test(.router) { client in
            for seed in ["-5", "18446744073709551611"] {
                for (uri, req) in [("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1, "seed": \#(seed)}"#),
                                   ("/v1/completions", #"{"prompt": "x", "max_tokens": 1, "seed": \#(seed)}"#),
                                   ("/api/generate", #"{"prompt": "x", "max_tokens": 1, "seed": \#(seed)}"#)] {
                    let r = try await client.execute(uri: uri, method: .post, headers: jsonHeaders, body: body(req))
                    XCTAssertEqual(r.status, .ok, "\(uri) \(seed): \(text(r.body))")
                }
            }
            XCTAssertEqual(backend.requests.map(\.seed), Array(repeating: UInt64.max - 4, count: 6))
        }
    }

    func testBadRequests() async throws {
        try await makeApp().test(.router) { client in
            let cases: [(String, String, String)] = [
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "n": 2}"#, "n:"),
                ("/v1/chat/completions", #"{"model": "m"}"#, "messages:"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}"#, "top_logprobs:"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}"#, "top_logprobs:"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}"#, "max_tokens:"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, "malformed JSON request"),
                ("/v1/chat/completions", #"{"messages": "#, "malformed JSON request"),
                ("/v1/completions", #"{"max_tokens": 3}"#, "prompt:"),
                ("/v1/completions", #"{"prompt": []}"#, "prompt: must not be an empty list"),
                ("/v1/completions", #"{"prompt": [1.5]}"#, "prompt: must be a string, a list of strings, a list of token ids or a list of token-id lists"),
                ("/v1/completions", #"{"prompt": [[1], ["a"]]}"#, "prompt: must be a string"),
                ("/v1/completions", #"{"prompt": [[]]}"#, "prompt: a token list must not be empty"),
                ("/v1/completions", #"{"prompt": ["a", ""]}"#, "prompt[1]: must not be empty"),
                ("/v1/completions", #"{"prompt": [[1], [1, 100]]}"#, "prompt[1]: token id 100 at index 1 is outside the vocabulary (0..<100)"),
                ("/v1/completions", #"{"prompt": [\#(Array(repeating: "1", count: 600).joined(separator: ","))]}"#, "prompt: 600 tokens; the model's context length is 512"),
                ("/v1/completions", #"{"prompt": [\#(Array(repeating: "\"a\"", count: 65).joined(separator: ","))]}"#, "prompt: 65 prompts; at most 64 per request"),
                ("/v1/completions", #"{"prompt": "a", "max_tokens": 0}"#, "max_tokens: 0 must be from 1"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "echo": true}"#, "echo: only /v1/completions takes echo"),
                ("/v1/completions", #"{"prompt": "a", "logprobs": 50}"#, "top_logprobs:"),
                ("/v1/completions", #"{"prompt": "a", "temperature": "hot"}"#, "malformed JSON request: temperature"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "persona": {"steering": []}}"#, "persona.steering: unknown field"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "persona": {"steer": [{"trait": "happy", "coefficient": 2}]}}"#,
                 "persona.steer[0].coefficient: unknown field"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "top_k": 5, "persona": {"top_k": 6}}"#, "top_k: given at the top level and in persona"),
                // valid JSON with a number that is not the field's integer: Foundation says "not valid JSON", no field
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5}"#, "max_tokens: must be an integer, not 2.5"),
                ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "persona": {"top_k": 0.5}}"#, "persona.top_k: must be an integer"),
                ("/v1/completions", #"{"prompt": "a", "logprobs": 1.5}"#, "logprobs: must be true, false or an integer"),
                ("/v1/completions", #"{"prompt": "a", "n": 1e30}"#, "n: 1e+30 is out of range"),
            ]
            for (uri, req, prefix) in cases {
                let m = try assertErrorShape(try await client.execute(uri: uri, method: .post, body: body(req)), .badRequest)
                XCTAssertTrue(m.hasPrefix(prefix), "\(req) -> \(m)")
            }
        }
    }
}
