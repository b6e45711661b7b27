import CUDADriver
import WideEPRuntime

/// The CUDA backend's buffer for the runtime protocols: 4-byte elements (float32 or int32) in device memory.
///
/// Conforms to `CUDAMemory`, so the CUDA communicators move it directly.
public final class CUDABuffer: CUDAMemory, @unchecked Sendable {
    let storage: DeviceArray<Float>
    /// Size in bytes.
    public var byteCount: Int { storage.byteCount }
    /// Device address of the first byte.
    public var devicePointer: CUdeviceptr { storage.pointer }

    /// Allocates `elements` 4-byte elements (at least one).
    public init(_ gpu: GPU, elements: Int) throws {
        storage = try DeviceArray<Float>(gpu, count: max(1, elements))
    }

    /// Address of 4-byte element `i`.
    func address(_ i: Int) -> CUdeviceptr { storage.pointer + UInt64(i * 4) }
}

extension GPU {
    /// Row-major float32 `y[m, n] = x[m, k] · W[n, k]ᵀ (+ y when accumulate)` with leading dimensions in elements.
    ///
    /// - Parameter fastBF16: use `CUBLAS_COMPUTE_32F_FAST_16BF` (bf16 tensor cores, fp32 accumulate: the expert
    ///   GEMM precision of the bf16 layer); false for exact float32 (the router, so top-k matches the reference).
    func gemmF32(
        x: CUdeviceptr, ldx: Int, w: CUdeviceptr, ldw: Int, y: CUdeviceptr, ldy: Int, rows m: Int, outFeatures n: Int,
        inFeatures k: Int, accumulate: Bool = false, fastBF16: Bool
    ) throws {
        if m == 0 || n == 0 { return }
        let h = try cublas()
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        try h.api.check(
            h.api.cublasGemmEx(
                h.handle, CUBLASConst.opT, CUBLASConst.opN, Int32(n), Int32(m), Int32(k), &alpha, w, CUBLASConst.r32F,
                Int32(ldw), x, CUBLASConst.r32F, Int32(ldx), &beta, y, CUBLASConst.r32F, Int32(ldy),
                fastBF16 ? CUBLASConst.compute32FFast16BF : CUBLASConst.compute32F, CUBLASConst.gemmDefault),
            "cublasGemmEx(f32, m \(m), n \(n), k \(k))")
    }
}
