import Testing
@Test func placeholderFluxTokenizers() { #expect(true) }
