/// CUDA backend: NVRTC kernels, cuBLAS GEMMs, NVLink and NCCL communicators.
public enum WideEPCUDA {
    /// Backend name as shown by `--device`.
    public static let deviceName = "cuda"
}
