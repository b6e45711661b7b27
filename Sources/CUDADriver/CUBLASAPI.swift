/// cuBLAS entry points, resolved once from `libcublas.so.13` (or `.12`).
///
/// Matrices are column-major as in cuBLAS; callers map row-major `y = x·Wᵀ` onto it (see `WideEPCUDA.GEMM`).
public struct CUBLASAPI: @unchecked Sendable {
    public typealias Status = Int32
    public let cublasCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    public let cublasDestroy: @convention(c) (OpaquePointer?) -> Status
    public let cublasGetVersion: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Status
    public let cublasSetStream: @convention(c) (OpaquePointer?, CUhandle?) -> Status
    public let cublasSetWorkspace: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int) -> Status
    public let cublasSetMathMode: @convention(c) (OpaquePointer?, Int32) -> Status
    public let cublasGetStatusString: (@convention(c) (Status) -> UnsafePointer<CChar>?)?
    public let cublasGetStatusName: (@convention(c) (Status) -> UnsafePointer<CChar>?)?
    /// `cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
    /// computeType, algo)`.
    public let cublasGemmEx: @convention(c) (
        OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer, CUdeviceptr, Int32, Int32,
        CUdeviceptr, Int32, Int32, UnsafeRawPointer, CUdeviceptr, Int32, Int32, Int32, Int32
    ) -> Status
    /// `cublasGemmGroupedBatchedEx` (cuBLAS ≥ 12.5): per-group shapes on the host, A/B/C pointer arrays on the device.
    public let cublasGemmGroupedBatchedEx: (@convention(c) (
        OpaquePointer?, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>,
        UnsafePointer<Int32>, UnsafeRawPointer, CUdeviceptr, Int32, UnsafePointer<Int32>, CUdeviceptr, Int32,
        UnsafePointer<Int32>, UnsafeRawPointer, CUdeviceptr, Int32, UnsafePointer<Int32>, Int32,
        UnsafePointer<Int32>, Int32
    ) -> Status)?

    init(_ lib: SharedLibrary) throws {
        cublasCreate = try lib.function("cublasCreate_v2")
        cublasDestroy = try lib.function("cublasDestroy_v2")
        cublasGetVersion = try lib.function("cublasGetVersion_v2")
        cublasSetStream = try lib.function("cublasSetStream_v2")
        cublasSetWorkspace = try lib.function("cublasSetWorkspace_v2")
        cublasSetMathMode = try lib.function("cublasSetMathMode")
        cublasGetStatusString = lib.optionalFunction("cublasGetStatusString")
        cublasGetStatusName = lib.optionalFunction("cublasGetStatusName")
        cublasGemmEx = try lib.function("cublasGemmEx")
        cublasGemmGroupedBatchedEx = lib.optionalFunction("cublasGemmGroupedBatchedEx")
    }

    /// "CUBLAS_STATUS_NOT_SUPPORTED: the functionality requested is not supported" for a status code.
    func message(_ code: Int32) -> String {
        let name = cublasGetStatusName?(code).map { String(cString: $0) } ?? "CUBLAS status \(code)"
        let text = cublasGetStatusString?(code).map { String(cString: $0) } ?? ""
        return text.isEmpty ? name : "\(name): \(text)"
    }

    /// Throws `CUDAError.cublas` when `code` is not `CUBLAS_STATUS_SUCCESS`.
    @inline(__always)
    public func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        if code != 0 { throw CUDAError.cublas(call: call(), code: code, message: message(code)) }
    }
}

/// cuBLAS and CUDA data-type constants (from `cublas_api.h` / `library_types.h`).
public enum CUBLASConst {
    /// `CUBLAS_OP_N`: use the matrix as stored.
    public static let opN: Int32 = 0
    /// `CUBLAS_OP_T`: use its transpose.
    public static let opT: Int32 = 1
    /// `CUDA_R_32F`.
    public static let r32F: Int32 = 0
    /// `CUDA_R_16BF`.
    public static let r16BF: Int32 = 14
    /// `CUBLAS_COMPUTE_32F`.
    public static let compute32F: Int32 = 68
    /// `CUBLAS_COMPUTE_32F_FAST_16BF`: float32 data through bf16 tensor cores, fp32 accumulation.
    public static let compute32FFast16BF: Int32 = 75
    /// `CUBLAS_GEMM_DEFAULT`.
    public static let gemmDefault: Int32 = -1
    /// `CUBLAS_DEFAULT_MATH`.
    public static let defaultMath: Int32 = 0
}
