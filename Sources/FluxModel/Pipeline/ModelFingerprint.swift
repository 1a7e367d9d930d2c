import FluxCore

extension TransformerCheckpoint {
    /// A short identity of the transformer's weights for image metadata (`Model hash` in the A1111 `parameters`
    /// line): the first 10 hex digits of SHA-256 over every tensor's name, dtype and shape and the first 4 KiB of
    /// its data, in name order. It reads about 4 MB of a 24 GB checkpoint, so it is not A1111's whole-file AutoV2
    /// hash, but two checkpoints that differ in any tensor's layout or leading values get different fingerprints
    /// (a fine-tune changes every tensor's values).
    public func fingerprint() throws -> String {
        var hash = SHA256()
        for file in weights.checkpoint.files {
            for info in file.tensorInfos {
                hash.update("\(info.name)\u{0}\(info.dtype)\u{0}\(info.shape)\u{0}")
                let bytes = try file.tensor(info.name).bytes
                hash.update(UnsafeRawBufferPointer(rebasing: bytes.prefix(4096)))
            }
        }
        return String(hash.finalizeHex().prefix(10))
    }
}
