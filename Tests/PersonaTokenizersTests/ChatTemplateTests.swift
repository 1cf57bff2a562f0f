import XCTest
@testable import PersonaTokenizers

final class ChatTemplateTests: XCTestCase {
    func testSmoke() throws {
        let t = try ChatTemplate(source: "{% for m in messages %}{{ m.role }}:{{ m['content'] | trim }}\n{% endfor %}")
        XCTAssertEqual(try t.render(messages: [.init(role: "user", content: " hi ")], addGenerationPrompt: false, bosToken: nil, eosToken: nil), "user:hi\n")
    }
}
