/// Placeholder until the CUDA backend lands.
enum CUDAPlaceholder {}
