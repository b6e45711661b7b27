import CUDADriver

/// The driver entry points the communicators need beyond `DriverAPI` (CUDA IPC), resolved once from `libcuda.so.1`.
///
/// `cuIpcOpenMemHandle` takes the 64-byte `CUipcMemHandle` **by value**. Swift cannot declare a C struct parameter
/// without a C header, so it is bound with the platform ABI's own rule for such an argument: on x86-64 (System V)
/// a struct larger than 16 bytes travels in memory, on the stack, after the integer registers are assigned, so it is
/// declared as eight trailing `UInt64` stack words (with the unused registers padded); on arm64 (AAPCS64) it is
/// passed as a pointer to a copy.
public struct IPCSymbols: @unchecked Sendable {
    /// `cuIpcGetMemHandle(CUipcMemHandle*, CUdeviceptr)`.
    let cuIpcGetMemHandle: @convention(c) (UnsafeMutableRawPointer, CUdeviceptr) -> Int32
    #if arch(x86_64)
    /// `cuIpcOpenMemHandle_v2(CUdeviceptr*, CUipcMemHandle, unsigned flags)`: flags in the 2nd register, 2 padding
    /// registers… then the handle's 8 words on the stack.
    let cuIpcOpenMemHandle: @convention(c) (
        UnsafeMutablePointer<CUdeviceptr>, UInt32, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    ) -> Int32
    #else
    let cuIpcOpenMemHandle: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, UnsafeRawPointer, UInt32) -> Int32
    #endif
    /// `cuIpcCloseMemHandle(CUdeviceptr)`.
    let cuIpcCloseMemHandle: @convention(c) (CUdeviceptr) -> Int32
    /// The driver table, for `check` and the plain calls.
    public let driver: DriverAPI

    /// `CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS`.
    static let lazyEnablePeerAccess: UInt32 = 1

    /// Resolves the symbols; throws `CUDAError.libraryNotFound` without a driver, `missingSymbol` on an old one.
    public static func load() throws -> IPCSymbols { try cached.get() }

    private static let cached: Result<IPCSymbols, Error> = Result {
        try IPCSymbols(try openDriverLibrary(), driver: try CUDA.driver())
    }

    init(_ lib: SharedLibrary, driver: DriverAPI) throws {
        self.driver = driver
        cuIpcGetMemHandle = try lib.function("cuIpcGetMemHandle")
        cuIpcOpenMemHandle = try lib.function("cuIpcOpenMemHandle_v2", "cuIpcOpenMemHandle")
        cuIpcCloseMemHandle = try lib.function("cuIpcCloseMemHandle")
    }

    /// The 64-byte IPC handle of the allocation starting at `pointer` (a `cuMemAlloc` base).
    public func exportHandle(_ pointer: CUdeviceptr) throws -> [UInt8] {
        var handle = [UInt8](repeating: 0, count: 64)
        try handle.withUnsafeMutableBytes { raw in
            try driver.check(cuIpcGetMemHandle(raw.baseAddress!, pointer), "cuIpcGetMemHandle")
        }
        return handle
    }

    /// Maps a peer's allocation from its 64-byte handle (lazy peer access); close it with `closeHandle`.
    public func openHandle(_ handle: [UInt8]) throws -> CUdeviceptr {
        guard handle.count == 64 else {
            throw CUDAError.invalidRequest("a CUDA IPC handle has 64 bytes, got \(handle.count)")
        }
        var p: CUdeviceptr = 0
        #if arch(x86_64)
        let w: [UInt64] = handle.withUnsafeBytes { raw in (0..<8).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
        try driver.check(
            cuIpcOpenMemHandle(&p, Self.lazyEnablePeerAccess, 0, 0, 0, 0, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]),
            "cuIpcOpenMemHandle")
        #else
        try handle.withUnsafeBytes { raw in
            try driver.check(cuIpcOpenMemHandle(&p, raw.baseAddress!, Self.lazyEnablePeerAccess), "cuIpcOpenMemHandle")
        }
        #endif
        return p
    }

    /// Unmaps a pointer from `openHandle`.
    public func closeHandle(_ pointer: CUdeviceptr) throws {
        try driver.check(cuIpcCloseMemHandle(pointer), "cuIpcCloseMemHandle")
    }
}

/// libcuda opened again for the symbols the shared driver table does not bind (IPC, graphs), in the discovery order.
func openDriverLibrary() throws -> SharedLibrary {
    let (lib, loc) = LibraryLoader.open(LibraryLoader.cuda)
    guard let lib else { throw CUDAError.libraryNotFound(library: "libcuda.so.1", tried: loc.tried) }
    return lib
}
