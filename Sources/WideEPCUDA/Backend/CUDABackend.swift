import CUDADriver
import Foundation
import WideEPRuntime

/// The CUDA backend for one GPU in this process (EP = 1): `CUDAMoEKernels` plus a single-rank communicator.
///
/// Expert parallelism over several GPUs runs one process per GPU (`wide-ep launch`) with the NVLink/NCCL
/// communicators; this backend is the `--device cuda` entry of `BackendRegistry` for one GPU.
public final class CUDABackend: MoEBackend, @unchecked Sendable {
    public typealias Kernels = CUDAMoEKernels
    public typealias Comm = SingleRankCommunicator

    public let numRanks = 1
    public var deviceName: String { WideEPCUDA.deviceName }
    /// Expert GEMMs run on bf16 tensor cores, so results agree with the float reference to about 1e-2.
    public var referenceTolerance: Double { 1e-2 }
    public var localRanks: [Int] { [0] }
    let k: CUDAMoEKernels
    let comm: SingleRankCommunicator

    /// Opens GPU `ordinal` (default: `LOCAL_RANK`, else 0).
    public init(options: BackendOptions, ordinal: Int? = nil) throws {
        guard options.numRanks == 1 else {
            throw BackendError.unavailable(
                WideEPCUDA.deviceName,
                reason: "one process drives one GPU: use --ep-size 1, or `wide-ep launch` for EP over several GPUs")
        }
        let env = ProcessInfo.processInfo.environment
        let gpu = try GPU(ordinal: ordinal ?? Int(env["LOCAL_RANK"] ?? "") ?? 0)
        k = try CUDAMoEKernels(gpu: gpu)
        comm = SingleRankCommunicator(gpu: gpu)
    }

    public func kernels(rank: Int) -> CUDAMoEKernels { k }
    public func communicator(rank: Int) -> SingleRankCommunicator { comm }

    public func runRanks(_ body: @escaping (Int) throws -> Void) throws {
        try k.gpu.context.makeCurrent()
        try body(0)
    }

    /// Registers "cuda" in the `BackendRegistry`, unavailable (with the reason) on machines without a driver.
    public static func register() {
        BackendRegistry.register(.init(
            name: WideEPCUDA.deviceName, unavailableReason: { CUDA.unavailableReason },
            make: { try CUDABackend(options: $0) }))
    }
}

/// The communicator of a one-rank group: every exchange is a local copy.
public final class SingleRankCommunicator: Communicator, @unchecked Sendable {
    public typealias Buffer = CUDABuffer
    let gpu: GPU
    var mailbox: [Int: [UInt8]] = [:]

    init(gpu: GPU) { self.gpu = gpu }

    public var rank: Int { 0 }
    public var size: Int { 1 }

    public func allToAllV(send: CUDABuffer, sendCounts: [Int], recv: CUDABuffer, recvCounts: [Int], rowBytes: Int)
        throws
    {
        guard sendCounts.count == 1, recvCounts == sendCounts else {
            throw CommunicatorError.countMismatch(rank: 0, detail: "send \(sendCounts) vs recv \(recvCounts) on 1 rank")
        }
        let bytes = sendCounts[0] * rowBytes
        guard bytes <= send.byteCount, bytes <= recv.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: 0, needed: bytes, available: min(send.byteCount, recv.byteCount))
        }
        guard bytes > 0 else { return }
        let api = gpu.context.api
        try api.check(api.cuMemcpyDtoDAsync(recv.devicePointer, send.devicePointer, bytes, gpu.stream.handle),
                      "cuMemcpyDtoDAsync(all-to-all self)")
    }

    public func exchangeCounts(_ sendCounts: [Int]) throws -> [Int] { sendCounts }
    public func allGather(_ values: [Int32]) throws -> [Int32] { values }
    public func allReduceSum(_ values: [Double]) throws -> [Double] { values }
    public func barrier() throws { try gpu.synchronize() }

    public func send(_ buffer: CUDABuffer, offset: Int, bytes: Int, to peer: Int, tag: Int) throws {
        guard peer == 0 else { throw CommunicatorError.invalidPeer(rank: 0, peer: peer, size: 1) }
        var host = [UInt8](repeating: 0, count: bytes)
        let api = gpu.context.api
        try host.withUnsafeMutableBytes { raw in
            try api.check(api.cuMemcpyDtoHAsync(raw.baseAddress, buffer.devicePointer + UInt64(offset), bytes,
                                                gpu.stream.handle), "cuMemcpyDtoHAsync(send)")
        }
        try gpu.synchronize()
        mailbox[tag] = host
    }

    public func recv(into buffer: CUDABuffer, offset: Int, bytes: Int, from peer: Int, tag: Int) throws {
        guard peer == 0 else { throw CommunicatorError.invalidPeer(rank: 0, peer: peer, size: 1) }
        guard let host = mailbox.removeValue(forKey: tag), host.count == bytes else {
            throw CommunicatorError.countMismatch(rank: 0, detail: "recv of \(bytes) bytes with tag \(tag) has no matching send")
        }
        let api = gpu.context.api
        try host.withUnsafeBytes { raw in
            try api.check(api.cuMemcpyHtoDAsync(buffer.devicePointer + UInt64(offset), raw.baseAddress, bytes,
                                                gpu.stream.handle), "cuMemcpyHtoDAsync(recv)")
        }
        try gpu.synchronize()
    }
}
