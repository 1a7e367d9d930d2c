import FluxModel
import Testing
@testable import FluxServer

/// Issue 12, item 8: the value rules shared by `fluxserve generate` and the service, and how the service maps them.
@Suite struct GenerationRulesTests {
    let rules = GenerationRules(sides: 32...256, guidance: 0...30)

    func request(prompt: String = "a fox", width: Int = 64, height: Int = 64, steps: Int = 4, guidance: Float = 3.5,
                 seed: UInt64 = 1, images: Int = 1, cacheThreshold: Float = 0) -> GenerationRequest {
        GenerationRequest(prompts: [prompt], width: width, height: height, steps: steps, guidanceScale: guidance,
                          seed: seed, imagesPerPrompt: images, cacheThreshold: cacheThreshold, maxSequenceLength: 512)
    }

    func refused(_ request: GenerationRequest) -> GenerationRuleError? {
        do throws(GenerationRuleError) {
            try rules.check(request)
            return nil
        } catch {
            return error
        }
    }

    @Test func eachRuleNamesItsParameter() {
        #expect(refused(request()) == nil)
        #expect(refused(request(prompt: " \n\t"))?.parameter == .prompt)
        #expect(refused(request(width: 100))?.parameter == .width)
        #expect(refused(request(height: 16))?.parameter == .height)
        #expect(refused(request(width: 512))?.parameter == .width)
        #expect(refused(request(steps: 0))?.parameter == .steps)
        #expect(refused(request(guidance: -1))?.parameter == .guidance)
        #expect(refused(request(guidance: .infinity))?.parameter == .guidance)
        #expect(refused(request(guidance: .nan))?.parameter == .guidance)
        #expect(refused(request(guidance: 31))?.parameter == .guidance)
        #expect(refused(request(images: 0))?.parameter == .imageCount)
        #expect(refused(request(cacheThreshold: 1.5))?.parameter == .cacheThreshold)
        #expect(refused(request(cacheThreshold: -0.1))?.parameter == .cacheThreshold)
        #expect(refused(request(cacheThreshold: .nan))?.parameter == .cacheThreshold)
        #expect(refused(request(cacheThreshold: 1)) == nil)
        #expect(refused(request(seed: .max)) == nil)
        #expect(refused(request(seed: .max, images: 2))?.parameter == .seed)
        #expect(refused(request(seed: .max - 1, images: 2)) == nil)
        #expect(refused(request(width: 100))?.reason == "must be a multiple of 16, got 100")
    }

    /// Issue 13: strength in (0, 1]; a true CFG scale in 1…100 exactly when a negative prompt is given.
    @Test func editRules() {
        func with(strength: Double? = nil, scale: Float = 1, negative: [String] = []) -> GenerationRequest {
            var r = request()
            (r.strength, r.trueCFGScale, r.negativePrompts) = (strength, scale, negative)
            return r
        }
        #expect(refused(with(strength: 1)) == nil)
        #expect(refused(with(strength: 0.01)) == nil)
        for bad in [0, -0.5, 1.01, .nan, .infinity] {
            #expect(refused(with(strength: bad))?.parameter == .strength)
        }
        #expect(refused(with(scale: 4, negative: [""])) == nil)
        #expect(refused(with(scale: 4))?.parameter == .trueCFGScale)
        #expect(refused(with(scale: 0.5, negative: ["blurry"]))?.parameter == .trueCFGScale)
        #expect(refused(with(scale: 101, negative: ["blurry"]))?.parameter == .trueCFGScale)
        #expect(refused(with(scale: .nan, negative: ["blurry"]))?.parameter == .trueCFGScale)
        #expect(refused(with(negative: ["blurry"]))?.parameter == .negativePrompt)
    }

    @Test func seedsParseAsUnsigned64() throws {
        #expect(try GenerationRules.seed(parsing: "0") == 0)
        #expect(try GenerationRules.seed(parsing: "18446744073709551615") == .max)
        for bad in ["-1", "18446744073709551616", "1.5", "seven", ""] {
            #expect(throws: GenerationRuleError.self) { try GenerationRules.seed(parsing: bad) }
        }
    }

    /// The service answers a rule's refusal as 422 `invalid_value` under its own field name.
    @Test func theServiceMapsRulesToFields() throws {
        let cases: [(GenerationRuleError.Parameter, String)] = [
            (.prompt, "prompt"), (.width, "size"), (.height, "size"), (.steps, "steps"), (.guidance, "guidance"),
            (.seed, "seed"), (.cacheThreshold, "cache_threshold"), (.imageCount, "n"), (.strength, "strength"),
            (.trueCFGScale, "true_cfg_scale"), (.negativePrompt, "negative_prompt"),
        ]
        #expect(cases.count == GenerationRuleError.Parameter.allCases.count)
        for (parameter, field) in cases {
            let error = APIError.invalidValue(GenerationRuleError(parameter, "is wrong"))
            #expect(error.status == .unprocessableContent && error.code == "invalid_value" && error.param == field)
        }
        // The service's own limits stay on top of the shared rules.
        var limits = GenerationLimits()
        limits.maxSteps = 10
        #expect(throws: APIError.self) {
            try JobParameters.resolve(prompt: "x", n: nil, size: nil, steps: 11, guidance: nil, seed: nil,
                                      cacheThreshold: nil, defaults: ModelDefaults(width: 64, height: 64, steps: 4,
                                                                                   guidance: 3.5), limits: limits)
        }
    }
}
