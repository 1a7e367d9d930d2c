import FluxCore
import FluxModel
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

/// `/v1/images/edits` and edit jobs through the router, on the fake model: what reaches the generator (mode, tensors
/// per image, strength), every refusal with its status, code and field, storage and deletion of the uploads, and
/// batching. The pixels of real edits are `EditsEndToEndTests`'.
@Suite struct EditsAPITests {
    static func edit(_ client: any TestClientProtocol, uri: String = "/v1/images/edits", fields: [(String, String)],
                     files: [(String, [UInt8])]) async throws -> TestResponse {
        let (body, type) = EditTestFiles.multipart(fields: fields, files: files)
        return try await client.execute(uri: uri, method: .post, headers: [.contentType: type],
                                        body: ByteBuffer(bytes: body))
    }

    static func uploads(_ config: inout ServerConfig) { config.maxUploadBytes = 200_000 }

    static let image = EditTestFiles.ramp(width: 96, height: 64)
    /// Left half transparent: edit the left half (OpenAI's rule).
    static let leftMask = EditTestFiles.rgbaPNG(width: 96, height: 64) { x, _ in x < 48 ? 0 : 255 }

    @Test func anInpaintingEditReturnsNImagesOfTheSize() async throws {
        let generator = FakeGenerator()
        try await withServer(generator: generator, configure: Self.uploads) { client, app in
            let reply = try await Self.edit(client, fields: [
                ("prompt", "a fox"), ("n", "2"), ("size", "64x32"), ("response_format", "b64_json"),
                ("model", "gpt-image-1"), ("quality", "high"), ("input_fidelity", "low"), ("seed", "5"),
                ("strength", "0.75"),
            ], files: [("image", Self.image), ("mask", Self.leftMask)])
            #expect(reply.status == .ok, "\(reply.text)")
            let data = try #require(reply.json["data"] as? [[String: Any]])
            #expect(data.count == 2)
            var pngs: [[UInt8]] = []
            for item in data {
                let png = Array(try #require(Data(base64Encoded: item["b64_json"] as? String ?? "")))
                #expect(pngSize(png).map { [$0.0, $0.1] } == [64, 32])
                pngs.append(png)
            }
            let batch = try #require(generator.batches.current.last)
            #expect(batch.mode == .inpainting && batch.strength == 0.75)
            #expect(batch.image?.shape == [2, 3, 32, 64] && batch.mask?.shape == [2, 1, 32, 64])
            // Transparent (left) is repainted: 1 there, 0 on the right, in every row of the batch.
            let mask = try #require(batch.mask).floats()
            #expect(mask[0] == 1 && mask[63] == 0 && mask[32 * 64] == 1 && mask[32 * 64 + 63] == 0)
            // The PNG records what made it, the uploads by digest.
            let text = Dictionary(try PNG.textChunks(pngs[0]).map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
            #expect(text["mode"] == "inpainting" && text["strength"] == "0.75" && text["mask_rule"] == "transparent")
            #expect(text["image_sha256"] == EditUpload.sha256(Self.image))
            #expect(text["mask_sha256"] == EditUpload.sha256(Self.leftMask))
            #expect(text["parameters"]?.contains("Denoising strength: 0.75, Edit: inpainting") == true)
            let id = try #require(reply.headers[ImagesAPI.jobIDHeader])
            let job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get).json
            let parameters = try #require(job["parameters"] as? [String: Any])
            #expect(parameters["mode"] as? String == "inpainting")
            #expect(parameters["image_sha256"] as? String == EditUpload.sha256(Self.image))
            _ = app
        }
    }

    @Test func withoutASizeTheImageGivesIt() async throws {
        let generator = FakeGenerator()
        try await withServer(generator: generator, configure: Self.uploads) { client, _ in
            let image = EditTestFiles.ramp(width: 90, height: 50)  // floored to multiples of 16: 80×48
            let reply = try await Self.edit(client, fields: [("prompt", "p"), ("size", "auto")],
                                            files: [("image[]", image)])
            #expect(reply.status == .ok, "\(reply.text)")
            let batch = try #require(generator.batches.current.last)
            #expect(batch.mode == .imageToImage && batch.mask == nil && batch.strength == nil)
            #expect(batch.width == 80 && batch.height == 48 && batch.image?.shape == [1, 3, 48, 80])
        }
    }

    /// Each refusal: status, code and the field named.
    @Test func badUploadsAreRefusedNamingThePart() async throws {
        let png = Self.image
        let rgbMask = EditTestFiles.rgbPNG(width: 96, height: 64) { _, _ in [255, 255, 255] }
        let smallMask = EditTestFiles.rgbaPNG(width: 32, height: 32) { _, _ in 0 }
        let cases: [(String, [(String, String)], [(String, [UInt8])], Int, String, String?)] = [
            ("not an image", [("prompt", "p")], [("image", Array("hello, world".utf8))], 400, "invalid_image", "image"),
            ("truncated PNG", [("prompt", "p")], [("image", Array(png.prefix(60)))], 400, "invalid_image", "image"),
            ("empty", [("prompt", "p")], [("image", [])], 400, "invalid_image", "image"),
            ("corrupt mask", [("prompt", "p")], [("image", png), ("mask", [0x89, 0x50, 0x4E, 0x47])], 400,
             "invalid_image", "mask"),
            ("mask without alpha", [("prompt", "p")], [("image", png), ("mask", rgbMask)], 400, "invalid_mask", "mask"),
            ("mask of another size", [("prompt", "p")], [("image", png), ("mask", smallMask)], 400, "invalid_mask",
             "mask"),
            ("two images", [("prompt", "p")], [("image[]", png), ("image[]", png)], 400, "too_many_images", "image"),
            ("no image", [("prompt", "p")], [], 400, "missing_field", "image"),
            ("no prompt", [], [("image", png)], 400, "missing_field", "prompt"),
            ("unknown field", [("prompt", "p"), ("colour", "red")], [("image", png)], 400, "unknown_field", "colour"),
            ("n not a number", [("prompt", "p"), ("n", "two")], [("image", png)], 400, "invalid_type", "n"),
            ("a field twice", [("prompt", "p"), ("prompt", "q")], [("image", png)], 400, "duplicate_field", "prompt"),
            ("strength > 1", [("prompt", "p"), ("strength", "1.5")], [("image", png)], 422, "invalid_value",
             "strength"),
            ("size off the grid", [("prompt", "p"), ("size", "100x100")], [("image", png)], 422, "invalid_value",
             "size"),
            ("negative prompt alone", [("prompt", "p"), ("negative_prompt", "blur")], [("image", png)], 422,
             "invalid_value", "negative_prompt"),
            ("webp asked", [("prompt", "p"), ("output_format", "webp")], [("image", png)], 422, "invalid_value",
             "output_format"),
        ]
        try await withServer(configure: Self.uploads) { client, _ in
            for (name, fields, files, status, code, param) in cases {
                let reply = try await Self.edit(client, fields: fields, files: files)
                let error = reply.json["error"] as? [String: Any]
                #expect(Int(reply.status.code) == status && reply.errorCode == code, "\(name): \(reply.text)")
                #expect(error?["param"] as? String == param, "\(name): \(reply.text)")
            }
            // Not multipart at all, and a multipart body cut short.
            let json = try await client.execute(uri: "/v1/images/edits", method: .post, headers: jsonHeaders,
                                                body: jsonBody(["prompt": "p"]))
            #expect(json.status == .unsupportedMediaType && json.errorCode == "unsupported_media_type")
            let (body, type) = EditTestFiles.multipart(fields: [("prompt", "p")], files: [("image", png)])
            let cut = try await client.execute(uri: "/v1/images/edits", method: .post, headers: [.contentType: type],
                                               body: ByteBuffer(bytes: body.prefix(body.count / 2)))
            #expect(cut.status == .badRequest && cut.errorCode == "invalid_multipart", "\(cut.text)")
        }
    }

    @Test func uploadsOverTheLimitsAre413Or400() async throws {
        try await withServer(configure: {
            $0.maxUploadBytes = 20_000
            $0.imageLimits.maxPixels = 64 * 64
        }) { client, _ in
            let big = EditTestFiles.rgbPNG(width: 120, height: 120) { x, y in [UInt8(x), UInt8(y), UInt8(x ^ y)] }
            #expect(big.count > 20_000)
            let tooLarge = try await Self.edit(client, fields: [("prompt", "p")], files: [("image", big)])
            #expect(tooLarge.status == .contentTooLarge && tooLarge.errorCode == "body_too_large", "\(tooLarge.text)")
            let tooManyPixels = try await Self.edit(client, fields: [("prompt", "p")], files: [("image", Self.image)])
            #expect(tooManyPixels.status == .badRequest && tooManyPixels.errorCode == "image_too_large")
            #expect(tooManyPixels.text.contains("maxPixels"), "\(tooManyPixels.text)")
        }
    }

    @Test func fillNeedsAMaskAndKontextTakesNone() async throws {
        let fill = FakeGenerator(variant: .fill)
        try await withServer(generator: fill, configure: Self.uploads) { client, _ in
            let bare = try await Self.edit(client, fields: [("prompt", "p")], files: [("image", Self.image)])
            #expect(bare.status == .badRequest && bare.errorCode == "mask_required", "\(bare.text)")
            let masked = try await Self.edit(client, fields: [("prompt", "p"), ("size", "64x64")],
                                             files: [("image", Self.image), ("mask", Self.leftMask)])
            #expect(masked.status == .ok, "\(masked.text)")
            #expect(fill.batches.current.last?.mode == .fill)
        }
        let kontext = FakeGenerator(variant: .kontext)
        try await withServer(generator: kontext, configure: Self.uploads) { client, _ in
            let masked = try await Self.edit(client, fields: [("prompt", "p")],
                                             files: [("image", Self.image), ("mask", Self.leftMask)])
            #expect(masked.status == .badRequest && masked.errorCode == "mask_not_supported")
            let strength = try await Self.edit(client, fields: [("prompt", "p"), ("strength", "0.5")],
                                               files: [("image", Self.image)])
            #expect(strength.status == .unprocessableContent && strength.errorCode == "invalid_value")
            let reply = try await Self.edit(client, fields: [("prompt", "make it blue"), ("size", "64x64")],
                                            files: [("image", Self.image)])
            #expect(reply.status == .ok, "\(reply.text)")
            // Kontext reads the reference at its preferred resolution nearest 96:64 (3:2 → 1248×832).
            let batch = try #require(kontext.batches.current.last)
            #expect(batch.mode == .kontext && batch.image?.shape == [1, 3, 832, 1248])
        }
    }

    @Test func aJSONJobTakesBase64AndItsInputsLiveAsLongAsItDoes() async throws {
        let generator = FakeGenerator()
        try await withServer(generator: generator, configure: {
            Self.uploads(&$0)
            $0.resultTTL = 0.05
        }) { client, app in
            // Noise, so the base64 body is over maxBodyBytes (16 KiB in tests).
            let image = EditTestFiles.rgbPNG(width: 128, height: 96) { x, y in
                [UInt8((x * 37 + y * 91) & 255), UInt8((x * x + y * 7) & 255), UInt8((x * y) & 255)]
            }
            // White repaints (the default mask rule, as the command line): the right half.
            let mask = EditTestFiles.rgbPNG(width: 128, height: 96) { x, _ in x < 64 ? [0, 0, 0] : [255, 255, 255] }
            let body: [String: Any] = [
                "prompt": "a fox", "size": "64x64", "steps": 2, "strength": 1,
                "image": Data(image).base64EncodedString(),
                "mask": "data:image/png;base64," + Data(mask).base64EncodedString(),
            ]
            #expect(try JSONSerialization.data(withJSONObject: body).count > 16 * 1024)  // over maxBodyBytes: allowed
            let submitted = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                     body: jsonBody(body))
            #expect(submitted.status == .accepted, "\(submitted.text)")
            let id = try #require(submitted.json["id"] as? String)
            let inputs = app.runtime.store.inputsDirectory(of: id)
            #expect(FileManager.default.contents(atPath: inputs.appendingPathComponent("image").path) == Data(image))
            let done = try await waitForJob(client, id)
            #expect(done["status"] as? String == "succeeded", "\(done)")
            let batch = try #require(generator.batches.current.last)
            #expect(batch.mode == .inpainting && batch.strength == 1)
            let repaint = try #require(batch.mask).floats()
            #expect(repaint[0] == 0 && repaint[63] == 1)
            // Expiry takes the uploads with the PNGs.
            try await Task.sleep(for: .milliseconds(100))
            await Sweeper(runtime: app.runtime).sweep()
            #expect(!FileManager.default.fileExists(atPath: inputs.path))

            // Without an image, a JSON body is still held to maxBodyBytes; bad base64 names its field.
            let padded = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                  body: jsonBody(["prompt": String(repeating: "x", count: 20_000)]))
            #expect(padded.status == .contentTooLarge)
            let garbled = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                   body: jsonBody(["prompt": "p", "image": "not base64!"]))
            #expect(garbled.status == .badRequest && garbled.errorCode == "invalid_image", "\(garbled.text)")
            let rule = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                body: jsonBody(["prompt": "p", "image": Data(Self.image).base64EncodedString(),
                                                                "mask_rule": "black"]))
            #expect(rule.status == .unprocessableContent && rule.errorCode == "invalid_value", "\(rule.text)")
        }
    }

    @Test func aMultipartJobAndAFailedEditLosesItsInputs() async throws {
        let generator = FakeGenerator(failPrompt: "fail")
        try await withServer(generator: generator, configure: Self.uploads) { client, app in
            let ok = try await Self.edit(client, uri: "/v1/jobs", fields: [
                ("prompt", "p"), ("size", "64x64"), ("mask_rule", "transparent"), ("steps", "3"),
            ], files: [("image", Self.image), ("mask", Self.leftMask)])
            #expect(ok.status == .accepted, "\(ok.text)")
            let done = try await waitForJob(client, ok.json["id"] as? String ?? "")
            #expect(done["status"] as? String == "succeeded", "\(done)")
            #expect(generator.batches.current.last?.mask?.floats().first == 1)
            let failing = try await Self.edit(client, uri: "/v1/jobs", fields: [("prompt", "fail"), ("size", "64x64")],
                                              files: [("image", Self.image)])
            let id = try #require(failing.json["id"] as? String)
            #expect(try await waitForJob(client, id)["status"] as? String == "failed")
            #expect(!FileManager.default.fileExists(atPath: app.runtime.store.inputsDirectory(of: id).path))
        }
    }

    /// Edits share a batch only with edits of the same mode, size, steps, strength and true CFG; text-to-image
    /// never joins them. Each image of an edit batch has its own row of `image`.
    @Test func editsBatchOnlyWithCompatibleJobs() async throws {
        let generator = FakeGenerator(holdFirstBatch: true)
        try await withServer(generator: generator, configure: {
            Self.uploads(&$0)
            $0.maxBatch = 8
        }) { client, _ in
            let blocker = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                   body: jsonBody(["prompt": "blocker"]))
            let blockerID = try #require(blocker.json["id"] as? String)
            try await waitForJob(client, blockerID) { $0["status"] as? String == "running" }
            let other = EditTestFiles.ramp(width: 64, height: 64)
            var ids: [String] = []
            for (prompt, image, extra) in [("a", Self.image, [("n", "2")]), ("t2i", nil, []), ("b", other, []),
                                           ("c", other, [("strength", "0.3")])] as [(String, [UInt8]?, [(String, String)])] {
                let fields = [("prompt", prompt), ("size", "64x64"), ("steps", "4"), ("seed", "1")] + extra
                let reply = try await Self.edit(client, uri: "/v1/jobs", fields: fields,
                                                files: image.map { [("image", $0)] } ?? [])
                #expect(reply.status == .accepted, "\(reply.text)")
                ids.append(reply.json["id"] as? String ?? "")
            }
            generator.release()
            for id in ids { try await waitForJob(client, id) }
            let batches = generator.batches.current
            #expect(batches.map(\.prompts) == [["blocker"], ["a", "a", "b"], ["t2i"], ["c"]])
            #expect(batches[1].image?.shape == [3, 3, 64, 64] && batches[2].image == nil)
            // Rows 0 and 1 are the first job's image, row 2 the second's.
            let rows = try #require(batches[1].image).floats(), row = 3 * 64 * 64
            #expect(Array(rows[0..<row]) == Array(rows[row..<(2 * row)]) && Array(rows[0..<row]) != Array(rows[(2 * row)...]))
        }
    }

    @Test func trueCFGOnGenerations() async throws {
        let generator = FakeGenerator()
        try await withServer(generator: generator) { client, _ in
            let reply = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                 body: jsonBody(["prompt": "p", "negative_prompt": "blurry, dark",
                                                                 "true_cfg_scale": 4, "response_format": "b64_json"]))
            #expect(reply.status == .ok, "\(reply.text)")
            let batch = try #require(generator.batches.current.last)
            #expect(batch.negativePrompt == "blurry, dark" && batch.trueCFGScale == 4 && batch.mode == .textToImage)
            let b64 = ((reply.json["data"] as? [[String: Any]])?.first?["b64_json"] as? String) ?? ""
            let text = try PNG.textChunks(Array(Data(base64Encoded: b64) ?? Data()))
            #expect(text.contains { $0.key == "negative_prompt" && $0.value == "blurry, dark" })
            #expect(text.contains { $0.key == "parameters" && $0.value.contains("\nNegative prompt: blurry, dark\n") })
            let alone = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                 body: jsonBody(["prompt": "p", "true_cfg_scale": 4]))
            #expect(alone.status == .unprocessableContent && (alone.json["error"] as? [String: Any])?["param"] as? String
                    == "true_cfg_scale")
            let strength = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                    body: jsonBody(["prompt": "p", "strength": 0.5]))
            #expect(strength.status == .unprocessableContent, "\(strength.text)")
        }
    }

    /// The edit settings live in the row's own columns (migration v3) and come back as they went in.
    @Test func theStoreKeepsEditColumns() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try JobStore(directory: dir)
        var p = JobParameters(prompt: "p", n: 2, width: 64, height: 64, steps: 4, guidance: 3.5, seed: 1,
                              cacheThreshold: 0)
        p.negativePrompt = "blurry"
        p.trueCFGScale = 2.5
        p.strength = 0.5
        p.edit = EditInput(mode: .inpainting, maskRule: .transparentRepaints, imageSHA256: "ab", maskSHA256: "cd",
                           referenceWidth: 64, referenceHeight: 64, imageFile: "inputs/job_x/image",
                           maskFile: "inputs/job_x/mask")
        let job = JobRecord(id: "job_x", kind: .async, status: .queued, parameters: p, owner: "o",
                            idempotencyKey: nil, requestFingerprint: "{}", createdAt: Date(), attempts: 0, images: [],
                            timings: [:])
        _ = try await store.insert(job)
        #expect(try await store.job("job_x")?.parameters == p)
        try store.close()
    }

    /// A codec library missing on this machine is the server's shortcoming, said as 501 naming the library (not a
    /// 400, and not a 503 a client would retry); the decoder's limits are 400 naming the `ImageLimits` field.
    @Test func decoderErrorsMapToTheirStatus() {
        let missing = EditUpload.apiError(.libraryMissing(library: "libturbojpeg.so.0", package: "libturbojpeg0",
                                                          tried: ["libturbojpeg.so.0"]), part: "image")
        #expect(missing.status == .notImplemented && missing.code == "image_library_missing")
        #expect(missing.message.contains("libturbojpeg.so.0") && missing.message.contains("libturbojpeg0"))
        let bomb = EditUpload.apiError(.tooManyPixels(width: 60000, height: 60000, limit: 100), part: "mask")
        #expect(bomb.status == .badRequest && bomb.param == "mask" && bomb.message.contains("ImageLimits.maxPixels"))
    }

    @Test func fieldTablesMatchTheBodies() {
        #expect(Set(ImageEditRequest.fields.keys) == Set(ImageEditRequest.CodingKeys.allCases.map(\.stringValue)))
    }
}
