import FluxCPU
import FluxImages
import FluxModel
import Foundation
import HummingbirdTesting
import Testing
@testable import FluxServer

/// The real tiny dev pipeline (CPU, f32) behind the router, with a `--lora-dir` of two fixture LoRAs: one server
/// switches kohya at 0.7 → xlabs → none between three requests (same seed) without reloading. Each image differs
/// from the others, and the last equals, pixel for pixel, what a server built without LoRAs makes: the switch back
/// leaves nothing behind.
@Suite(.serialized) struct LoRAEndToEndTests {
    static func generator(loraMode: LowRankSlots.Mode?) throws -> PipelineGenerator {
        let components = try PipelineComponents.resolve(LoRATestFiles.tinyPipeline)
        // 64×64 defaults: the warm-up at load runs at that size, not the checkpoint's 1024×1024.
        return try PipelineGenerator(modelName: "dev_tiny", components: components, loraMode: loraMode,
                                     defaults: ModelDefaults(width: 64, height: 64, steps: 2, guidance: 3.5),
                                     makeBackend: { CPUBackend() })
    }

    /// One synchronous generation's pixels (RGBA8); `png` gets the file's bytes.
    static func image(_ client: any TestClientProtocol, loras: [[String: Any]],
                      png: ((Data) -> Void)? = nil) async throws -> [UInt8] {
        let body = jsonBody(["prompt": "a red circle", "size": "64x64", "steps": 2, "seed": 7,
                             "response_format": "b64_json", "loras": loras])
        let reply = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                             body: body)
        #expect(reply.status == .ok, "\(reply.text)")
        let b64 = ((reply.json["data"] as? [[String: Any]])?.first?["b64_json"] as? String) ?? ""
        png?(Data(base64Encoded: b64) ?? Data())
        return try ImageDecoder.decode(Array(Data(base64Encoded: b64) ?? Data())).pixels
    }

    /// Mean absolute difference, 0…255.
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        return zip(a, b).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(a.count)
    }

    @Test(arguments: [LowRankSlots.Mode.swap, .beside])
    func switchingLoRAsBetweenRequestsAndBackToNoneIsClean(_ mode: LowRankSlots.Mode) async throws {
        let dir = try LoRATestFiles.directory(withUnusable: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let images = Locked<[String: [UInt8]]>([:])
        let switching = try Self.generator(loraMode: mode)
        try await withServer(generator: switching, configure: { $0.loraDirectory = dir }) { client, _ in
            let kohya = try await Self.image(client, loras: [["name": "kohya", "scale": 0.7]]) { png in
                // PNG text chunks are stored as they are: the LoRA's record and A1111's tag must be in the file.
                let text = String(decoding: png, as: UTF8.self)
                #expect(text.contains("\"name\":\"kohya\"") && text.contains("\"scale\":0.7"), "loras chunk")
                #expect(text.contains("<lora:kohya:0.7>"), "A1111 parameters")
            }
            let xlabs = try await Self.image(client, loras: [["name": "xlabs"]])
            let none = try await Self.image(client, loras: [])
            images.withLock { $0 = ["kohya": kohya, "xlabs": xlabs, "none": none] }
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            #expect(metrics.contains("fluxserve_lora_switches_total 3"))
        }
        try await withServer(generator: try Self.generator(loraMode: nil)) { client, _ in
            let plain = try await Self.image(client, loras: [])
            images.withLock { $0["plain"] = plain }
        }
        let found = images.current
        let (kohya, xlabs, none, plain) = (found["kohya"] ?? [], found["xlabs"] ?? [], found["none"] ?? [],
                                           found["plain"] ?? [])
        #expect(!plain.isEmpty && plain.count == 64 * 64 * 4)
        #expect(none == plain, "after switching back: mean difference \(Self.difference(none, plain))")
        // Each LoRA moves the image visibly (the fixtures change it by 11–59 %), not by a rounding step.
        for (name, a, b) in [("kohya/none", kohya, none), ("xlabs/none", xlabs, none), ("kohya/xlabs", kohya, xlabs)] {
            let difference = Self.difference(a, b)
            print("LoRA end-to-end: \(name) mean |difference| \(difference) of 255")
            #expect(difference > 1, "\(name)")
        }
    }
}
