import FluxCore
import FluxImages
import FluxModel

extension Worker.PreparedBatch {
    /// The batch with its edit inputs attached: each job's stored image (and mask) decoded and prepared at the
    /// batch's size (`EditUpload.prepare`, as at submission), one row per image of the job, so `image` is
    /// (batch, 3, H, W) and `mask` (batch, 1, height, width). Text-to-image batches come back as they are. Runs on the
    /// generation thread: decoding is the worker's work, not the request's.
    func withInputs(store: JobStore, variant: ModelVariant, limits: ImageLimits) throws -> ImageBatch {
        var batch = images
        guard batch.mode != .textToImage else { return batch }
        var image: [Float] = [], mask: [Float] = [], imageShape: [Int] = []
        for (job, range) in zip(jobs, imageRanges) {
            guard let edit = job.parameters.edit else {
                throw StoreError.corruptRow(column: "mode", reason: "job \(job.id) in a \(batch.mode.rawValue) batch has no inputs")
            }
            let prepared = try EditUpload.prepare(
                image: try store.readInput(edit.imageFile), mask: try edit.maskFile.map(store.readInput),
                maskRule: edit.maskRule, variant: variant, size: (batch.width, batch.height), limits: limits)
            // Jobs batch only with equal reference sizes (`BatchKey`), so the rows stack.
            imageShape = Array(prepared.image.shape.dropFirst())
            let values = prepared.image.floats(), maskValues = prepared.mask?.floats()
            for _ in range {
                image += values
                if let maskValues { mask += maskValues }
            }
        }
        let count = batch.prompts.count
        batch.image = HostTensor(image, shape: [count] + imageShape)
        if !mask.isEmpty { batch.mask = HostTensor(mask, shape: [count, 1, batch.height, batch.width]) }
        return batch
    }
}
