import FluxCore
import Testing

/// The one JSON reader (safetensors headers, tokenizer files, HTTP bodies), under both of its option sets.
@Suite struct JSONTests {
    @Test func values() throws {
        let text = #"{"a": [1, -2.5e3, true, false, null], "b": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#
        for options in [JSONScanner.Options.strict, .python] {
            let value = try JSONScanner.parse(Array(text.utf8), options: options)
            guard case let .array(a)? = value["a"], case let .string(b)? = value["b"] else {
                Issue.record("wrong shape")
                return
            }
            #expect(a.count == 5)
            if case let .number(text) = a[1] { #expect(Double(text) == -2500) } else { Issue.record("not a number") }
            #expect(b == "x\"\\/\u{8}\u{c}\n\r\té😀")
        }
    }

    @Test func rejectsWhatRFC8259Rejects() {
        let bad = ["", "{", "[1,]", "{\"a\": 1,}", "{\"a\" 1}", "01", "01x", "\"\u{1}\"", "[1] 2", "tru", "\"\\q\"",
                   "-", "1.", "1e", "NaN", "// c\n1", "{'a': 1}"]
        for text in bad {
            for options in [JSONScanner.Options.strict, .python] {
                #expect(throws: JSONSyntaxError.self, "\(text)") { try JSONScanner.parse(Array(text.utf8), options: options) }
            }
        }
        let deep = String(repeating: "[", count: 10_000)
        #expect(throws: JSONSyntaxError.self) { try JSONScanner.parse(Array(deep.utf8), options: .python) }
    }

    @Test func duplicateKeysAndLoneSurrogatesFollowTheOptions() throws {
        let repeated = Array(#"{"a": 1, "a": 2}"#.utf8)
        #expect(throws: JSONSyntaxError.self) { try JSONScanner.parse(repeated, options: .strict) }
        if case let .number(last)? = try JSONScanner.parse(repeated, options: .python)["a"] {
            #expect(last == "2")  // the last wins, as Python's json.load
        } else { Issue.record("no member a") }

        let lone = Array(#""a\ud800b""#.utf8)
        #expect(throws: JSONSyntaxError.self) { try JSONScanner.parse(lone, options: .strict) }
        if case let .string(text) = try JSONScanner.parse(lone, options: .python) {
            #expect(text == "a\u{FFFD}b")
        } else { Issue.record("not a string") }
    }

    @Test func errorsSayWhere() {
        do {
            _ = try JSONScanner.parse(Array(#"{"n": 1,}"#.utf8))
            Issue.record("accepted a trailing comma")
        } catch {
            #expect(error.offset == 8, "\(error)")
            #expect(error.description.hasPrefix("invalid JSON at byte 8"))
        }
    }
}
