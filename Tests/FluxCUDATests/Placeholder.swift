import Testing
@Test func cudaPlaceholder() { #expect(Bool(true)) }
