import Testing
@Test func placeholderFluxModel() { #expect(true) }
