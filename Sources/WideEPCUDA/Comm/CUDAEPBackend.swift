import CUDADriver
import Foundation
import WideEPRuntime

/// The communicator of the process-per-GPU backend: NVLink (CUDA IPC) within a node, NCCL between nodes or where
/// `WIDEEP_COMM=nccl` asks for it (e.g. no P2P between the GPUs).
public final class CUDAEPCommunicator: Communicator, @unchecked Sendable {
    public typealias Buffer = CUDABuffer
    let nvlink: NVLinkCommunicator<CUDABuffer>?
    let nccl: NCCLCommunicator<CUDABuffer>?
    public let rank: Int, size: Int

    init(nvlink: NVLinkCommunicator<CUDABuffer>?, nccl: NCCLCommunicator<CUDABuffer>?, rank: Int, size: Int) {
        self.nvlink = nvlink
        self.nccl = nccl
        self.rank = rank
        self.size = size
    }

    /// "nvlink" or "nccl".
    public var transport: String { nvlink != nil ? "nvlink" : "nccl" }

    public func allToAllV(send: CUDABuffer, sendCounts: [Int], recv: CUDABuffer, recvCounts: [Int], rowBytes: Int) throws {
        if let nvlink { try nvlink.allToAllV(send: send, sendCounts: sendCounts, recv: recv, recvCounts: recvCounts, rowBytes: rowBytes) }
        else { try nccl!.allToAllV(send: send, sendCounts: sendCounts, recv: recv, recvCounts: recvCounts, rowBytes: rowBytes) }
    }
    public func exchangeCounts(_ sendCounts: [Int]) throws -> [Int] {
        try nvlink?.exchangeCounts(sendCounts) ?? nccl!.exchangeCounts(sendCounts)
    }
    public func allGather(_ values: [Int32]) throws -> [Int32] { try nvlink?.allGather(values) ?? nccl!.allGather(values) }
    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        try nvlink?.allReduceSum(values) ?? nccl!.allReduceSum(values)
    }
    public func barrier() throws { if let nvlink { try nvlink.barrier() } else { try nccl!.barrier() } }
    public func send(_ buffer: CUDABuffer, offset: Int, bytes: Int, to peer: Int, tag: Int) throws {
        if let nvlink { try nvlink.send(buffer, offset: offset, bytes: bytes, to: peer, tag: tag) }
        else { try nccl!.send(buffer, offset: offset, bytes: bytes, to: peer, tag: tag) }
    }
    public func recv(into buffer: CUDABuffer, offset: Int, bytes: Int, from peer: Int, tag: Int) throws {
        if let nvlink { try nvlink.recv(into: buffer, offset: offset, bytes: bytes, from: peer, tag: tag) }
        else { try nccl!.recv(into: buffer, offset: offset, bytes: bytes, from: peer, tag: tag) }
    }
}

/// The CUDA backend for expert parallelism over several GPUs, one process per GPU (`localRanks == [rank]`): the
/// single-GPU `CUDAMoEKernels` plus `CUDAEPCommunicator`. Created through `BackendRegistry` after
/// `CUDAEPBackend.register(store:rank:size:localRank:localSize:)`, which a multi-process command calls once it has
/// joined the job.
public final class CUDAEPBackend: MoEBackend, @unchecked Sendable {
    public typealias Kernels = CUDAMoEKernels
    public typealias Comm = CUDAEPCommunicator

    public let numRanks: Int
    /// This process's rank.
    public let rank: Int
    public var deviceName: String { WideEPCUDA.deviceName }
    /// Expert GEMMs run on bf16 tensor cores, so results agree with the float reference to about 1e-2.
    public var referenceTolerance: Double { 1e-2 }
    public var localRanks: [Int] { [rank] }
    let k: CUDAMoEKernels
    let comm: CUDAEPCommunicator

    /// Joins the group (collective): opens GPU `localRank mod devices`, then maps the NVLink staging buffers of every
    /// rank (`stagingBytes` each) or, with `transport == "nccl"`, joins an NCCL clique.
    public init(store: CommStore, rank: Int, size: Int, localRank: Int, transport: String, stagingBytes: Int) throws {
        guard transport == "nvlink" || transport == "nccl" else {
            throw BackendError.unavailable(WideEPCUDA.deviceName, reason: "WIDEEP_COMM must be nvlink or nccl, got '\(transport)'")
        }
        let gpu = try GPU(ordinal: localRank % max(1, try CUDA.deviceCount()))
        k = try CUDAMoEKernels(gpu: gpu)
        numRanks = size
        self.rank = rank
        if transport == "nvlink" {
            // A byte-sized staging buffer: the generic all-to-all only uses the receive region.
            let shape = EPShape(ranks: size, hidden: 128, experts: size, topK: 1,
                                maxTokens: max(1, stagingBytes / (size * 256)), lowLatencyTokens: 0)
            let ep = try NVLinkEP(gpu: gpu, rank: rank, shape: shape, store: store, name: "cuda-ep/nvlink")
            comm = CUDAEPCommunicator(nvlink: try NVLinkCommunicator(transport: ep, store: store, name: "cuda-ep/comm"),
                                      nccl: nil, rank: rank, size: size)
        } else {
            comm = CUDAEPCommunicator(nvlink: nil, nccl: try NCCLCommunicator(gpu: gpu, rank: rank, size: size, store: store,
                                                                               name: "cuda-ep/nccl"), rank: rank, size: size)
        }
    }

    public func kernels(rank: Int) -> CUDAMoEKernels { k }
    public func communicator(rank: Int) -> CUDAEPCommunicator { comm }

    public func runRanks(_ body: @escaping (Int) throws -> Void) throws {
        try k.gpu.context.makeCurrent()
        try body(rank)
    }

    /// Replaces the "cuda" registry entry: `--ep-size 1` still gets the single-GPU backend; an EP size equal to the
    /// launched world size gets this backend (NVLink when every rank is on this node, else NCCL; `WIDEEP_COMM`
    /// overrides). Staging per rank: `WIDEEP_NVLINK_STAGING_MB` (default 512).
    public static func register(store: CommStore, rank: Int, size: Int, localRank: Int, localSize: Int) {
        let env = ProcessInfo.processInfo.environment
        let transport = env["WIDEEP_COMM"] ?? (localSize == size ? "nvlink" : "nccl")
        let staging = (Int(env["WIDEEP_NVLINK_STAGING_MB"] ?? "") ?? 512) << 20
        BackendRegistry.register(.init(
            name: WideEPCUDA.deviceName, unavailableReason: { CUDA.unavailableReason },
            make: { options in
                if options.numRanks == 1 && size == 1 { return try CUDABackend(options: options) }
                guard options.numRanks == size else {
                    throw BackendError.unavailable(
                        WideEPCUDA.deviceName,
                        reason: "the EP size (\(options.numRanks)) must equal the launched world size (\(size)): one process per GPU")
                }
                return try CUDAEPBackend(store: store, rank: rank, size: size, localRank: localRank, transport: transport,
                                         stagingBytes: staging)
            }))
    }
}
