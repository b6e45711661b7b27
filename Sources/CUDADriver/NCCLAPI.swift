/// The NCCL entry points that need no by-value structs, resolved once from `libnccl.so.2`.
///
/// The multi-GPU communicator builds on these; `ncclCommInitRank` (which takes `ncclUniqueId` by value) is bound
/// there.
public struct NCCLAPI: @unchecked Sendable {
    public typealias Status = Int32
    public let ncclGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    public let ncclGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?
    public let ncclCommInitAll: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UnsafePointer<Int32>?) -> Status
    public let ncclCommDestroy: @convention(c) (OpaquePointer?) -> Status
    public let ncclGroupStart: @convention(c) () -> Status
    public let ncclGroupEnd: @convention(c) () -> Status
    /// `ncclSend(buff, count, datatype, peer, comm, stream)`.
    public let ncclSend: @convention(c) (CUdeviceptr, Int, Int32, Int32, OpaquePointer?, CUhandle?) -> Status
    /// `ncclRecv(buff, count, datatype, peer, comm, stream)`.
    public let ncclRecv: @convention(c) (CUdeviceptr, Int, Int32, Int32, OpaquePointer?, CUhandle?) -> Status

    init(_ lib: SharedLibrary) throws {
        ncclGetVersion = try lib.function("ncclGetVersion")
        ncclGetErrorString = try lib.function("ncclGetErrorString")
        ncclCommInitAll = try lib.function("ncclCommInitAll")
        ncclCommDestroy = try lib.function("ncclCommDestroy")
        ncclGroupStart = try lib.function("ncclGroupStart")
        ncclGroupEnd = try lib.function("ncclGroupEnd")
        ncclSend = try lib.function("ncclSend")
        ncclRecv = try lib.function("ncclRecv")
    }

    /// Throws `CUDAError.nccl` with `ncclGetErrorString` when `code` is not `ncclSuccess`.
    public func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        if code != 0 {
            let text = ncclGetErrorString(code).map { String(cString: $0) } ?? "NCCL error \(code)"
            throw CUDAError.nccl(call: call(), code: code, message: text)
        }
    }

    /// NCCL's version as "2.27.3".
    public func versionString() throws -> String {
        var v: Int32 = 0
        try check(ncclGetVersion(&v), "ncclGetVersion")
        let major = Int(v) / 10000, minor = (Int(v) % 10000) / 100, patch = Int(v) % 100
        return "\(major).\(minor).\(patch)"
    }
}
