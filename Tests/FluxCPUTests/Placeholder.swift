import Testing
@Test func placeholderFluxCPU() { #expect(true) }
