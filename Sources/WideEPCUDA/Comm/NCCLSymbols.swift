import CUDADriver

/// The NCCL entry points of the multi-process communicator, resolved once from `libnccl.so.2`.
///
/// `ncclCommInitRank(ncclComm_t*, int nranks, ncclUniqueId id, int rank)` takes the 128-byte id **by value**; as
/// with `cuIpcOpenMemHandle` (see `IPCSymbols`) it is bound by the ABI's rule for a large struct: on x86-64 the id
/// travels on the stack after `rank` took the third integer register (the three unused registers are padded); on
/// arm64 it is passed as a pointer to a copy.
public struct NCCLSymbols: @unchecked Sendable {
    typealias Comm = OpaquePointer?
    let ncclGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let ncclGetUniqueId: @convention(c) (UnsafeMutableRawPointer) -> Int32
    #if arch(x86_64)
    let ncclCommInitRank: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>, Int32, Int32, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    ) -> Int32
    #else
    let ncclCommInitRank: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UnsafeRawPointer, Int32) -> Int32
    #endif
    let ncclCommDestroy: @convention(c) (Comm) -> Int32
    let ncclCommAbort: @convention(c) (Comm) -> Int32
    let ncclCommGetAsyncError: @convention(c) (Comm, UnsafeMutablePointer<Int32>) -> Int32
    let ncclGroupStart: @convention(c) () -> Int32
    let ncclGroupEnd: @convention(c) () -> Int32
    /// `ncclSend/ncclRecv(buff, count, datatype, peer, comm, stream)`.
    let ncclSend: @convention(c) (CUdeviceptr, Int, Int32, Int32, Comm, CUhandle?) -> Int32
    let ncclRecv: @convention(c) (CUdeviceptr, Int, Int32, Int32, Comm, CUhandle?) -> Int32
    /// `ncclAllGather(send, recv, sendcount, datatype, comm, stream)`.
    let ncclAllGather: @convention(c) (CUdeviceptr, CUdeviceptr, Int, Int32, Comm, CUhandle?) -> Int32
    /// `ncclAllReduce(send, recv, count, datatype, op, comm, stream)`.
    let ncclAllReduce: @convention(c) (CUdeviceptr, CUdeviceptr, Int, Int32, Int32, Comm, CUhandle?) -> Int32

    /// `ncclUint8`, `ncclInt32`, `ncclFloat64`, `ncclSum`.
    static let uint8: Int32 = 1, int32: Int32 = 2, float64: Int32 = 8, sum: Int32 = 0

    /// Resolves the symbols; throws `CUDAError.libraryNotFound` when NCCL is not installed.
    public static func load() throws -> NCCLSymbols { try cached.get() }

    private static let cached: Result<NCCLSymbols, Error> = Result {
        let (lib, loc) = LibraryLoader.open(LibraryLoader.nccl)
        guard let lib else { throw CUDAError.libraryNotFound(library: "libnccl.so.2", tried: loc.tried) }
        return try NCCLSymbols(lib)
    }

    init(_ lib: SharedLibrary) throws {
        ncclGetErrorString = try lib.function("ncclGetErrorString")
        ncclGetUniqueId = try lib.function("ncclGetUniqueId")
        ncclCommInitRank = try lib.function("ncclCommInitRank")
        ncclCommDestroy = try lib.function("ncclCommDestroy")
        ncclCommAbort = try lib.function("ncclCommAbort")
        ncclCommGetAsyncError = try lib.function("ncclCommGetAsyncError")
        ncclGroupStart = try lib.function("ncclGroupStart")
        ncclGroupEnd = try lib.function("ncclGroupEnd")
        ncclSend = try lib.function("ncclSend")
        ncclRecv = try lib.function("ncclRecv")
        ncclAllGather = try lib.function("ncclAllGather")
        ncclAllReduce = try lib.function("ncclAllReduce")
    }

    /// Throws `CUDAError.nccl` with NCCL's message when `code` is not `ncclSuccess`.
    public func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        if code != 0 {
            let text = ncclGetErrorString(code).map { String(cString: $0) } ?? "NCCL error \(code)"
            throw CUDAError.nccl(call: call(), code: code, message: text)
        }
    }

    /// A fresh 128-byte `ncclUniqueId` (rank 0 makes it; the store carries it to the others).
    public func uniqueId() throws -> [UInt8] {
        var id = [UInt8](repeating: 0, count: 128)
        try id.withUnsafeMutableBytes { try check(ncclGetUniqueId($0.baseAddress!), "ncclGetUniqueId") }
        return id
    }

    /// `ncclCommInitRank` with the id passed by value.
    public func initRank(size: Int, id: [UInt8], rank: Int) throws -> OpaquePointer? {
        guard id.count == 128 else { throw CUDAError.invalidRequest("an ncclUniqueId has 128 bytes, got \(id.count)") }
        var comm: OpaquePointer?
        #if arch(x86_64)
        let w: [UInt64] = id.withUnsafeBytes { raw in (0..<16).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
        try check(
            ncclCommInitRank(
                &comm, Int32(size), Int32(rank), 0, 0, 0, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9],
                w[10], w[11], w[12], w[13], w[14], w[15]),
            "ncclCommInitRank(rank \(rank) of \(size))")
        #else
        try id.withUnsafeBytes { raw in
            try check(ncclCommInitRank(&comm, Int32(size), raw.baseAddress!, Int32(rank)), "ncclCommInitRank(rank \(rank) of \(size))")
        }
        #endif
        return comm
    }
}
