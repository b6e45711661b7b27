import CUDADriver
import Foundation
import WideEPRuntime

/// The runtime `Communicator` over NCCL (one process per GPU): the path between nodes, and the fallback wherever
/// CUDA P2P is missing.
///
/// All-to-all-v is one NCCL group of `ncclSend`/`ncclRecv` (pairs with zero rows are skipped on both sides, which
/// the matched counts guarantee), with the self part as a device-to-device copy. Every call completes on the GPU's
/// stream before it returns. The unique id travels through the store. `abort()` (also registered in `CommAbort`)
/// calls `ncclCommAbort`, so a rank whose peer died never hangs inside NCCL.
public final class NCCLCommunicator<Buffer: CUDAMemory>: Communicator {
    public let rank: Int
    public let size: Int
    let gpu: GPU
    let nccl: NCCLSymbols
    private(set) var comm: OpaquePointer?
    private let scratch: DeviceArray<UInt64>
    private let scratchCount = 4096

    /// Joins the NCCL clique of `size` ranks under `name` (collective).
    public init(gpu: GPU, rank: Int, size: Int, store: CommStore, name: String = "nccl") throws {
        guard size >= 1, rank >= 0, rank < size else {
            throw CommunicatorError.invalidPeer(rank: rank, peer: rank, size: size)
        }
        nccl = try NCCLSymbols.load()
        self.gpu = gpu
        self.rank = rank
        self.size = size
        let id: [UInt8]
        if rank == 0 {
            id = try nccl.uniqueId()
            try store.set("\(name)/unique-id", id)
        } else {
            id = try store.get("\(name)/unique-id", timeout: nil)
        }
        try gpu.context.makeCurrent()
        comm = try nccl.initRank(size: size, id: id, rank: rank)
        scratch = try DeviceArray<UInt64>(gpu, count: scratchCount)
        let comm = comm, nccl = nccl
        CommAbort.register(self) { _ = nccl.ncclCommAbort(comm) }
    }

    deinit {
        CommAbort.unregister(self)
        if let comm { _ = nccl.ncclCommDestroy(comm) }
    }

    /// Ends the communicator at once (`ncclCommAbort`); every later call throws.
    public func abort() {
        CommAbort.unregister(self)
        if let c = comm { _ = nccl.ncclCommAbort(c) }
        comm = nil
    }

    func live() throws -> OpaquePointer? {
        guard let comm else { throw CommunicatorError.aborted("rank \(rank): the NCCL communicator was aborted") }
        return comm
    }

    /// Waits for the stream, then surfaces an asynchronous NCCL error (a peer failure) as `CommunicatorError.aborted`.
    func finish(_ what: String) throws {
        try gpu.synchronize()
        var async: Int32 = 0
        try nccl.check(nccl.ncclCommGetAsyncError(try live(), &async), "ncclCommGetAsyncError")
        if async != 0 {
            let text = nccl.ncclGetErrorString(async).map { String(cString: $0) } ?? "\(async)"
            abort()
            throw CommunicatorError.aborted("rank \(rank): NCCL \(what) failed asynchronously: \(text)")
        }
    }

    func checkPeers(_ counts: [Int], _ what: String) throws {
        guard counts.count == size else {
            throw CommunicatorError.countMismatch(rank: rank, detail: "\(what) has \(counts.count) entries for \(size) ranks")
        }
        if let bad = counts.firstIndex(where: { $0 < 0 }) {
            throw CommunicatorError.countMismatch(rank: rank, detail: "\(what)[\(bad)] is negative")
        }
    }

    public func allToAllV(send: Buffer, sendCounts: [Int], recv: Buffer, recvCounts: [Int], rowBytes: Int) throws {
        try checkPeers(sendCounts, "sendCounts")
        try checkPeers(recvCounts, "recvCounts")
        let sendBytes = sendCounts.reduce(0, +) * rowBytes, recvBytes = recvCounts.reduce(0, +) * rowBytes
        guard sendBytes <= send.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: sendBytes, available: send.byteCount)
        }
        guard recvBytes <= recv.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: recvBytes, available: recv.byteCount)
        }
        guard sendCounts[rank] == recvCounts[rank] else {
            throw CommunicatorError.countMismatch(
                rank: rank, detail: "sends \(sendCounts[rank]) rows to itself but expects \(recvCounts[rank])")
        }
        let c = try live(), s = gpu.stream.handle
        let sOff = CommLayout.sendOffsets(counts: sendCounts), rOff = CommLayout.sendOffsets(counts: recvCounts)
        try nccl.check(nccl.ncclGroupStart(), "ncclGroupStart")
        var groupError: Error?
        for p in 0..<size where p != rank {
            do {
                if sendCounts[p] > 0 {
                    try nccl.check(
                        nccl.ncclSend(send.devicePointer + UInt64(sOff[p] * rowBytes), sendCounts[p] * rowBytes,
                                      NCCLSymbols.uint8, Int32(p), c, s), "ncclSend(to \(p))")
                }
                if recvCounts[p] > 0 {
                    try nccl.check(
                        nccl.ncclRecv(recv.devicePointer + UInt64(rOff[p] * rowBytes), recvCounts[p] * rowBytes,
                                      NCCLSymbols.uint8, Int32(p), c, s), "ncclRecv(from \(p))")
                }
            } catch { groupError = error; break }
        }
        try nccl.check(nccl.ncclGroupEnd(), "ncclGroupEnd")
        if let groupError { throw groupError }
        if sendCounts[rank] > 0 {
            let api = gpu.context.api
            try api.check(
                api.cuMemcpyDtoDAsync(recv.devicePointer + UInt64(rOff[rank] * rowBytes),
                                      send.devicePointer + UInt64(sOff[rank] * rowBytes), sendCounts[rank] * rowBytes, s),
                "cuMemcpyDtoDAsync(self part)")
        }
        try finish("all-to-all-v")
    }

    public func exchangeCounts(_ sendCounts: [Int]) throws -> [Int] {
        try checkPeers(sendCounts, "sendCounts")
        guard size * 2 <= scratchCount else { throw CommunicatorError.bufferTooSmall(rank: rank, needed: size * 2, available: scratchCount) }
        try scratch.upload(sendCounts.map { UInt64($0) }, gpu: gpu)
        let c = try live(), s = gpu.stream.handle
        try nccl.check(nccl.ncclGroupStart(), "ncclGroupStart")
        var groupError: Error?
        for p in 0..<size where groupError == nil {
            do {
                try nccl.check(nccl.ncclSend(scratch.address(at: p), 8, NCCLSymbols.uint8, Int32(p), c, s), "ncclSend(count to \(p))")
                try nccl.check(nccl.ncclRecv(scratch.address(at: size + p), 8, NCCLSymbols.uint8, Int32(p), c, s),
                               "ncclRecv(count from \(p))")
            } catch { groupError = error }
        }
        try nccl.check(nccl.ncclGroupEnd(), "ncclGroupEnd(exchangeCounts)")
        if let groupError { throw groupError }
        try finish("count exchange")
        return try scratch.download(gpu, count: 2 * size)[size...].map { Int($0) }
    }

    public func allGather(_ values: [Int32]) throws -> [Int32] {
        let n = values.count
        guard (n * (size + 1) + 1) / 2 <= scratchCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: n * (size + 1) * 4, available: scratchCount * 8)
        }
        if n == 0 { return [] }
        var padded = values.withUnsafeBytes { Array($0) }
        while padded.count % 8 != 0 { padded.append(0) }
        let words = padded.withUnsafeBytes { Array($0.bindMemory(to: UInt64.self)) }
        try scratch.upload(words, gpu: gpu)
        let recvAt = scratch.address(at: words.count)
        try nccl.check(
            nccl.ncclAllGather(scratch.pointer, recvAt, n, NCCLSymbols.int32, try live(), gpu.stream.handle), "ncclAllGather")
        try finish("all-gather")
        let got = try scratch.download(gpu, count: words.count + (n * size * 4 + 7) / 8)
        return Array(got[words.count...]).withUnsafeBytes { Array($0.bindMemory(to: Int32.self).prefix(n * size)) }
    }

    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        guard values.count * 2 <= scratchCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: values.count * 16, available: scratchCount * 8)
        }
        if values.isEmpty { return [] }
        try scratch.upload(values.map { $0.bitPattern }, gpu: gpu)
        let out = scratch.address(at: values.count)
        try nccl.check(
            nccl.ncclAllReduce(scratch.pointer, out, values.count, NCCLSymbols.float64, NCCLSymbols.sum, try live(),
                               gpu.stream.handle), "ncclAllReduce")
        try finish("all-reduce")
        return try scratch.download(gpu, count: 2 * values.count)[values.count...].map { Double(bitPattern: $0) }
    }

    public func barrier() throws { _ = try allReduceSum([1]) }

    public func send(_ buffer: Buffer, offset: Int, bytes: Int, to peer: Int, tag: Int) throws {
        try checkPointToPoint(buffer, offset: offset, bytes: bytes, peer: peer)
        try nccl.check(
            nccl.ncclSend(buffer.devicePointer + UInt64(offset), bytes, NCCLSymbols.uint8, Int32(peer), try live(),
                          gpu.stream.handle), "ncclSend(to \(peer), tag \(tag))")
        try finish("send")
    }

    public func recv(into buffer: Buffer, offset: Int, bytes: Int, from peer: Int, tag: Int) throws {
        try checkPointToPoint(buffer, offset: offset, bytes: bytes, peer: peer)
        try nccl.check(
            nccl.ncclRecv(buffer.devicePointer + UInt64(offset), bytes, NCCLSymbols.uint8, Int32(peer), try live(),
                          gpu.stream.handle), "ncclRecv(from \(peer), tag \(tag))")
        try finish("recv")
    }
}
