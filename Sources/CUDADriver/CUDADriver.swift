/// dlopen bindings to the CUDA driver, NVRTC, cuBLAS(Lt) and NCCL, resolved at run time.
public enum CUDADriverInfo {
    /// Sonames tried after any environment override, in discovery order (DESIGN.md §6).
    public static let driverSoname = "libcuda.so.1"
}
