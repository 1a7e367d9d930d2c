import FluxCore
import FluxModel
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

/// Issue 14, item 5, through the router on the fake model (checked against the tiny pipeline's LoRA targets):
/// `GET /v1/loras`, the `loras` field of generations, edits and jobs with every refusal naming its field, what
/// reaches the generator, the store and the batching. The real pipeline's images are `LoRAEndToEndTests`'.
@Suite struct LoRAAPITests {
    /// A server whose `--lora-dir` is `LoRATestFiles.directory()`.
    static func withLoRAServer(
        _ generator: FakeGenerator? = nil,
        _ body: @Sendable (any TestClientProtocol, FluxServerApp, FakeGenerator) async throws -> Void
    ) async throws {
        let dir = try LoRATestFiles.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let generator = try generator ?? FakeGenerator(loraTargets: LoRATestFiles.tinyTargets())
        try await withServer(generator: generator, configure: { $0.loraDirectory = dir }) { client, app in
            try await body(client, app, generator)
        }
    }

    static func post(_ client: any TestClientProtocol, uri: String = "/v1/images/generations",
                     _ body: [String: Any]) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .post, headers: jsonHeaders, body: jsonBody(body))
    }

    @Test func listsEveryFileWithWhyAnUnusableOneIsUnusable() async throws {
        try await Self.withLoRAServer { client, app, _ in
            let reply = try await client.execute(uri: "/v1/loras", method: .get)
            #expect(reply.status == .ok)
            #expect(reply.json["object"] as? String == "list")
            let data = try #require(reply.json["data"] as? [[String: Any]])
            #expect(data.map { $0["name"] as? String } == ["broken", "kohya", "mismatched", "xlabs"])
            let byName = Dictionary(data.map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { $1 })
            let kohya = try #require(byName["kohya"]), xlabs = try #require(byName["xlabs"])
            let kohyaFile = try LoRAFile.open(LoRATestFiles.fixture("kohya"))
            #expect(kohya["usable"] as? Bool == true && kohya["error"] == nil)
            #expect(kohya["format"] as? String == "kohya")
            #expect(kohya["components"] as? [String] == kohyaFile.components.map(\.rawValue))
            #expect(kohya["modules"] as? Int == kohyaFile.modules.count && kohyaFile.modules.count > 0)
            #expect(kohya["ranks"] as? [Int] == Set(kohyaFile.modules.map(\.rank)).sorted())
            #expect(kohya["alphas"] as? [Double] == Set(kohyaFile.modules.compactMap(\.alpha)).sorted())
            #expect(kohya["sha256"] as? String == (try LoRATestFiles.sha256(LoRATestFiles.fixture("kohya"))))
            let size = try FileManager.default.attributesOfItem(atPath: LoRATestFiles.fixture("kohya"))[.size]
            #expect(kohya["bytes"] as? Int == (size as? NSNumber)?.intValue)
            #expect(xlabs["usable"] as? Bool == true && xlabs["format"] as? String == "xlabs")
            #expect(xlabs["alphas"] as? [Double] == [])
            // Unusable, with the reason, naming the file but not the server's folder.
            let directory = try #require(app.runtime.loras?.directory)
            for name in ["broken", "mismatched"] {
                let entry = try #require(byName[name])
                let error = entry["error"] as? String ?? ""
                #expect(entry["usable"] as? Bool == false)
                #expect(error.contains("\(name).safetensors") && !error.contains(directory), "\(error)")
            }
            #expect(byName["broken"]?["format"] == nil && byName["broken"]?["modules"] as? Int == 0)
            let brokenSHA = try LoRATestFiles.sha256(directory + "/broken.safetensors")
            #expect(byName["broken"]?["sha256"] as? String == brokenSHA)
            let mismatched = try #require(byName["mismatched"])
            #expect(mismatched["format"] as? String == "kohya")
            #expect((mismatched["error"] as? String ?? "").contains("lora_unet_double_blocks_0_img_attn_qkv"))
        }
    }

    @Test func withoutALoRADirNothingIsListedAndLoRAsAreRefused() async throws {
        try await withServer { client, _ in
            let list = try await client.execute(uri: "/v1/loras", method: .get)
            #expect(list.status == .ok && (list.json["data"] as? [Any])?.isEmpty == true)
            let refused = try await Self.post(client, ["prompt": "p", "loras": [["name": "kohya"]]])
            #expect(refused.status == .unprocessableContent && refused.errorCode == "invalid_value")
            #expect((refused.json["error"] as? [String: Any])?["param"] as? String == "loras")
            #expect(refused.text.contains("--lora-dir"))
            // An empty list asks for nothing.
            let empty = try await Self.post(client, ["prompt": "p", "loras": [] as [Any], "steps": 1])
            #expect(empty.status == .ok, "\(empty.text)")
        }
    }

    /// Each bad `loras` value: status, code and the field named, on the JSON endpoints.
    @Test func refusalsNameTheField() async throws {
        try await Self.withLoRAServer { client, _, generator in
            let nine = (0..<9).map { _ in ["name": "kohya"] }
            let cases: [(loras: Any, status: HTTPResponse.Status, code: String, param: String)] = [
                ([["name": "nope"]], .unprocessableContent, "invalid_value", "loras[0].name"),
                ([["name": "kohya"], ["name": "../kohya"]], .unprocessableContent, "invalid_value", "loras[1].name"),
                ([["name": "/etc/passwd"]], .unprocessableContent, "invalid_value", "loras[0].name"),
                ([["name": "sub/kohya"]], .unprocessableContent, "invalid_value", "loras[0].name"),
                ([["name": "kohya.safetensors"]], .unprocessableContent, "invalid_value", "loras[0].name"),
                ([["name": ""]], .unprocessableContent, "invalid_value", "loras[0].name"),
                ([["name": "mismatched"]], .unprocessableContent, "invalid_value", "loras[0].name"),
                ([["name": "broken"]], .unprocessableContent, "invalid_value", "loras[0].name"),
                ([["name": "kohya"], ["name": "kohya"]], .unprocessableContent, "invalid_value", "loras[1].name"),
                ([["name": "kohya"], ["name": "xlabs", "scale": 8.5]], .unprocessableContent, "invalid_value",
                 "loras[1].scale"),
                ([["name": "kohya", "scale": -9]], .unprocessableContent, "invalid_value", "loras[0].scale"),
                (nine, .unprocessableContent, "invalid_value", "loras"),
                ("kohya", .badRequest, "invalid_type", "loras"),
                (["kohya"], .badRequest, "invalid_type", "loras[0]"),
                ([["name": 3]], .badRequest, "invalid_type", "loras[0].name"),
                ([["scale": 1]], .badRequest, "missing_field", "loras[0].name"),
                ([["name": "kohya", "scale": "1"]], .badRequest, "invalid_type", "loras[0].scale"),
                ([["name": "kohya", "scale": true]], .badRequest, "invalid_type", "loras[0].scale"),
                ([["name": "kohya", "weight": 1]], .badRequest, "unknown_field", "loras[0].weight"),
            ]
            for uri in ["/v1/images/generations", "/v1/jobs"] {
                for item in cases {
                    let reply = try await Self.post(client, uri: uri, ["prompt": "p", "loras": item.loras])
                    let param = (reply.json["error"] as? [String: Any])?["param"] as? String
                    #expect(reply.status == item.status && reply.errorCode == item.code && param == item.param,
                            "\(uri) \(item.loras): \(reply.status) \(reply.text)")
                }
            }
            #expect(generator.batches.current.isEmpty)  // none reached the model
        }
    }

    /// A job keeps its LoRAs (name, scale, the file's SHA-256), shows them, and the batch runs them; the next job
    /// without LoRAs switches back, and `/metrics` counts both switches.
    @Test func aJobRunsWithItsLoRAsAndTheNextSwitchesBack() async throws {
        try await Self.withLoRAServer { client, _, generator in
            let reply = try await Self.post(client, uri: "/v1/jobs", [
                "prompt": "p", "steps": 1, "loras": [["name": "kohya", "scale": 0.7], ["name": "xlabs"]],
            ])
            #expect(reply.status == .accepted, "\(reply.text)")
            let id = try #require(reply.json["id"] as? String)
            let job = try await waitForJob(client, id)
            #expect(job["status"] as? String == "succeeded")
            let shown = (job["parameters"] as? [String: Any])?["loras"] as? [[String: Any]] ?? []
            #expect(shown.map { $0["name"] as? String } == ["kohya", "xlabs"])
            #expect(shown.map { $0["scale"] as? Double } == [0.7, 1])
            #expect(shown.first?["sha256"] as? String == (try LoRATestFiles.sha256(LoRATestFiles.fixture("kohya"))))
            let batch = try #require(generator.batches.current.last)
            #expect(batch.loras.entries.map(\.file.name) == ["kohya", "xlabs"])
            #expect(batch.loras.entries.map(\.scale) == [0.7, 1])

            let plain = try await Self.post(client, ["prompt": "p", "steps": 1])
            #expect(plain.status == .ok)
            let id2 = try #require(plain.headers[ImagesAPI.jobIDHeader])
            let job2 = try await client.execute(uri: "/v1/jobs/\(id2)", method: .get).json
            #expect(((job2["parameters"] as? [String: Any])?["loras"] as? [Any])?.isEmpty == true)
            #expect(generator.batches.current.last?.loras.isEmpty == true)
            #expect(generator.loraSwitches.current == ["kohya:0.7,xlabs:1.0", "none"])
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            #expect(metrics.contains("fluxserve_lora_switches_total 2"), "\(metrics)")
            #expect(metrics.contains("fluxserve_lora_switch_seconds_count 2"))
        }
    }

    /// Multipart edits (and multipart jobs) take `loras` as one text field holding the JSON array.
    @Test func editsTakeLoRAsAsAJSONFormField() async throws {
        let image = EditTestFiles.ramp(width: 64, height: 64)
        try await Self.withLoRAServer { client, _, generator in
            let reply = try await EditsAPITests.edit(client, fields: [
                ("prompt", "p"), ("steps", "2"), ("strength", "1"), ("loras", #"[{"name": "xlabs", "scale": -0.5}]"#),
            ], files: [("image", image)])
            #expect(reply.status == .ok, "\(reply.text)")
            #expect(generator.batches.current.last?.loras.entries.map(\.file.name) == ["xlabs"])
            #expect(generator.batches.current.last?.loras.entries.map(\.scale) == [-0.5])
            let job = try await EditsAPITests.edit(client, uri: "/v1/jobs", fields: [
                ("prompt", "p"), ("steps", "2"), ("loras", #"[{"name": "kohya"}]"#),
            ], files: [])
            #expect(job.status == .accepted, "\(job.text)")
            let bad: [(String, HTTPResponse.Status, String)] = [
                (#"[{"name": "nope"}]"#, .unprocessableContent, "loras[0].name"), ("kohya", .badRequest, "loras"),
                (#"[{"name": "kohya",}]"#, .badRequest, "loras"),  // the strict reader: no trailing comma
            ]
            for (loras, status, param) in bad {
                let bad = try await EditsAPITests.edit(client, fields: [("prompt", "p"), ("loras", loras)],
                                                       files: [("image", image)])
                #expect(bad.status == status, "\(loras): \(bad.text)")
                #expect((bad.json["error"] as? [String: Any])?["param"] as? String == param, "\(loras): \(bad.text)")
            }
        }
    }

    @Test func fieldTablesListLoRAs() {
        #expect(ImageGenerationRequest.fields["loras"] == .loras)
        #expect(ImageEditRequest.fields["loras"] == .loras)
        #expect(JobRequest.fields["loras"] == .loras)
        #expect(Set(JobRequest.fields.keys) == Set(JobRequest.CodingKeys.allCases.map(\.stringValue)))
        #expect(Set(ImageGenerationRequest.fields.keys)
                == Set(ImageGenerationRequest.CodingKeys.allCases.map(\.stringValue)))
    }
}
