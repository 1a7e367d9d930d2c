import FluxCore
import Foundation
import Testing

/// Issue 13, item 4: `fluxserve generate --image/--mask/--strength/--outpaint/--negative-prompt/--true-cfg-scale`,
/// as a user meets it: files in, PNGs out with the edit recorded, and every mistake one `error:` line, exit 1,
/// before any weight loads.
@Suite struct EditCommandLineTests {
    typealias Run = BackendOptionsCLITests.Run
    static let pipelines = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pipeline").path

    /// A scratch folder with `source.png` (a 64×64 demo picture), a 64×64 mask (white right half) and a 32×32 one.
    static func scratch() throws -> String {
        let folder = try CommandLineTests.folder()
        let run = try CommandLineTests.run(["generate", "a red circle", "--model", "demo", "-o", folder + "/source.png",
                                            "--seed", "1", "--steps", "2", "--width", "64", "--height", "64"])
        #expect(run.status == 0, "\(run.stderr)")
        for (name, side) in [("mask", 64), ("small-mask", 32)] {
            let rgb = (0..<(side * side)).flatMap { i -> [UInt8] in
                let level: UInt8 = i % side >= side / 2 ? 255 : 0
                return [level, level, level]
            }
            try Data(PNG.encode(rgb: rgb, width: side, height: side)).write(to: URL(fileURLWithPath: "\(folder)/\(name).png"))
        }
        return folder
    }

    static func size(ofPNG path: String) throws -> [Int] {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let word = { (at: Int) in bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        return [word(16), word(20)]
    }

    static func text(ofPNG path: String) throws -> [String: String] {
        let chunks = try PNG.textChunks(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        return Dictionary(chunks.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
    }

    static func sha256(of path: String) throws -> String {
        var sha = SHA256()
        sha.update(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        return sha.finalizeHex()
    }

    @Test func editMistakesAreOneErrorLine() throws {
        let s = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: s) }
        try Data("not a picture".utf8).write(to: URL(fileURLWithPath: s + "/notes.png"))
        let png = Array(try Data(contentsOf: URL(fileURLWithPath: s + "/source.png")))
        try Data(png.prefix(60)).write(to: URL(fileURLWithPath: s + "/cut.png"))
        let base = ["generate", "a blue circle", "--model", "demo", "-o", s + "/out.png"]
        let fill = ["generate", "fill it", "--model", Self.pipelines + "/fill_tiny", "-o", s + "/out.png"]
        let kontext = ["generate", "make it blue", "--model", Self.pipelines + "/kontext_tiny", "-o", s + "/out.png"]
        let cases: [(arguments: [String], says: String)] = [
            (base + ["--mask", s + "/mask.png"], "--mask needs --image"),
            (base + ["--outpaint", "8,8,8,8"], "--outpaint needs --image"),
            (base + ["--image", s + "/missing.png"], "missing.png"),
            (base + ["--image", s + "/notes.png"], "notes.png"),
            (base + ["--image", s + "/cut.png"], "cut.png"),
            (base + ["--image", s + "/source.png", "--strength", "0"], "--strength"),
            (base + ["--image", s + "/source.png", "--strength", "1.5"], "--strength"),
            (base + ["--image", s + "/source.png", "--width", "64"], "--width and --height"),
            (base + ["--image", s + "/source.png", "--mask", s + "/small-mask.png"], "same size"),
            (base + ["--image", s + "/source.png", "--outpaint", "8,8"], "LEFT,TOP,RIGHT,BOTTOM"),
            (base + ["--true-cfg-scale", "3"], "negative prompt"),
            (base + ["--negative-prompt", "blurry"], "--negative-prompt"),
            (base + ["--true-cfg-scale", "0.5", "--negative-prompt", "blurry"], "--true-cfg-scale"),
            (fill + ["--image", s + "/source.png"], "Fill"),
            (kontext + ["--image", s + "/source.png", "--mask", s + "/mask.png"], "Kontext"),
            (kontext + ["--image", s + "/source.png", "--strength", "0.5"], "--strength"),
        ]
        for c in cases {
            try CommandLineTests.expectOneErrorLine(c.arguments, saying: c.says)
            #expect(!FileManager.default.fileExists(atPath: s + "/out.png"))
        }
    }

    @Test func editsWriteThePictureAndRecordTheirInputs() throws {
        let s = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: s) }
        let source = s + "/source.png", mask = s + "/mask.png"
        let common = ["--model", "demo", "--seed", "3", "--steps", "4"]

        // img2img: the output takes the image's size; the strength and the input's hash are recorded.
        var run = try CommandLineTests.run(["generate", "a blue circle", "-o", s + "/img2img.png", "--image", source,
                                            "--strength", "0.5"] + common)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Self.size(ofPNG: s + "/img2img.png") == [64, 64])
        var text = try Self.text(ofPNG: s + "/img2img.png")
        #expect(text["mode"] == "img2img" && text["strength"] == "0.5")
        #expect(text["image_sha256"] == (try Self.sha256(of: source)))
        #expect(text["parameters"]?.contains("Denoising strength: 0.5") == true)

        // Inpainting at another size: both inputs resized, the mask's hash recorded.
        run = try CommandLineTests.run(["generate", "a blue square", "-o", s + "/inpaint.png", "--image", source,
                                        "--mask", mask, "--width", "96", "--height", "64"] + common)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Self.size(ofPNG: s + "/inpaint.png") == [96, 64])
        text = try Self.text(ofPNG: s + "/inpaint.png")
        #expect(text["mode"] == "inpainting" && text["strength"] == "0.6")
        #expect(text["mask_sha256"] == (try Self.sha256(of: mask)))

        // True CFG: the negative prompt is recorded, also as A1111's second line.
        run = try CommandLineTests.run(["generate", "a green triangle", "-o", s + "/cfg.png", "--negative-prompt",
                                        "a red circle", "--true-cfg-scale", "2.5", "--width", "64", "--height", "64"]
                                       + common)
        #expect(run.status == 0, "\(run.stderr)")
        text = try Self.text(ofPNG: s + "/cfg.png")
        #expect(text["negative_prompt"] == "a red circle" && text["true_cfg_scale"] == "2.5")
        #expect(text["parameters"]?.contains("\nNegative prompt: a red circle\n") == true)
        #expect(text["parameters"]?.contains("CFG scale: 2.5") == true)

        // Outpainting on a Fill model: the canvas grows by the border (sides on the tiny model's 8-pixel grid).
        run = try CommandLineTests.run(["generate", "more of it", "--model", Self.pipelines + "/fill_tiny",
                                        "-o", s + "/outpaint.png", "--image", source, "--outpaint", "16,0,8,24",
                                        "--steps", "2", "--seed", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Self.size(ofPNG: s + "/outpaint.png") == [88, 88])
        text = try Self.text(ofPNG: s + "/outpaint.png")
        #expect(text["mode"] == "fill" && text["outpaint"] == "16,0,8,24" && text["strength"] == "1")
    }
}
