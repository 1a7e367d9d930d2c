import Testing
@Test func placeholderFluxCore() { #expect(true) }
