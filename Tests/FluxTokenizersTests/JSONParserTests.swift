import Testing
@testable import FluxTokenizers

@Suite struct JSONParserTests {
    @Test func values() throws {
        let text = #"{"a": [1, -2.5e3, true, false, null], "b": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#
        let value = try JSONParser.parse(Array(text.utf8))
        guard case let .array(a)? = value["a"], case let .string(b)? = value["b"] else {
            Issue.record("wrong shape")
            return
        }
        #expect(a.count == 5)
        if case let .number(text) = a[1] { #expect(Double(text) == -2500) } else { Issue.record("not a number") }
        #expect(b == "x\"\\/\u{8}\u{c}\n\r\té😀")
    }

    @Test func rejects() {
        for text in ["", "{", "[1,]", "{\"a\" 1}", "01x", "\"\u{1}\"", "[1] 2", "tru", "\"\\q\"", "-", "1.", "1e"] {
            #expect(throws: JSONSyntaxError.self, "\(text)") { try JSONParser.parse(Array(text.utf8)) }
        }
        let deep = String(repeating: "[", count: 10_000)
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(Array(deep.utf8)) }
    }

    @Test func loneSurrogateBecomesReplacement() throws {
        let value = try JSONParser.parse(Array(#""a\ud800b""#.utf8))
        if case let .string(text) = value { #expect(text == "a\u{FFFD}b") } else { Issue.record("not a string") }
    }
}
