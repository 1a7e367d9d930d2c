/// What a file is, judged by its first bytes, for the formats people hand a safetensors reader by mistake: a
/// quantized GGUF, a PyTorch pickle, a Git LFS pointer (a clone without `git lfs`), an image, a JSON config. Used
/// only once a file has failed to look like safetensors, so a real checkpoint is never second-guessed.
public enum FileSignature {
    /// A description of the format `prefix` (the file's first bytes, 16 are enough) starts like, or nil.
    public static func describe(_ prefix: [UInt8]) -> String? {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            prefix.count >= offset + magic.count && Array(prefix[offset..<offset + magic.count]) == magic
        }
        func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }
        if starts(ascii("GGUF")) {
            return "a GGUF file (llama.cpp / stable-diffusion.cpp quantized format); convert it to safetensors, or use "
                + "the original .safetensors checkpoint"
        }
        if starts([0x50, 0x4B, 0x03, 0x04]) {
            return "a ZIP archive — a PyTorch checkpoint (.pt/.pth/.ckpt saved by torch.save) is one; FluxServe never "
                + "unpickles files: convert it to .safetensors"
        }
        if starts([0x80]) && prefix.count > 1 && (2...5).contains(prefix[1]) {
            return "a Python pickle (an old-style PyTorch .ckpt/.bin); FluxServe never unpickles files: convert it to "
                + ".safetensors"
        }
        if starts(ascii("version https://git-lfs")) {
            return "a Git LFS pointer, not the weights (the repository was cloned without git-lfs); fetch the real file"
        }
        if starts([0x89, 0x50, 0x4E, 0x47]) { return "a PNG image, not a checkpoint" }
        if starts([0xFF, 0xD8, 0xFF]) { return "a JPEG image, not a checkpoint" }
        if starts(ascii("RIFF")) && starts(ascii("WEBP"), at: 8) { return "a WebP image, not a checkpoint" }
        if starts(ascii("GIF8")) { return "a GIF image, not a checkpoint" }
        if starts([0x89, 0x48, 0x44, 0x46]) { return "an HDF5 file (Keras .h5), not a safetensors checkpoint" }
        let text = prefix.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        if text.first == UInt8(ascii: "{") || text.first == UInt8(ascii: "[") {
            return "a JSON file, not a safetensors checkpoint (give the folder that holds it, or the .safetensors "
                + "file itself)"
        }
        return nil
    }
}
