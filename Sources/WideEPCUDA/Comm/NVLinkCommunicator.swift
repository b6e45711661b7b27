import CUDADriver
import Foundation
import WideEPRuntime

/// The runtime `Communicator` over NVLink within one node: CUDA IPC-mapped receive buffers (`NVLinkEP`), counts
/// exchanged by a device kernel, rows moved by the copy engines straight into each peer's buffer, and epoch flags.
///
/// `allToAllV`: the count matrix is all-gathered on the device (`ep_notify`), each rank copies its block for peer p
/// to p's receive region at the offset that the matrix gives (Σ of lower ranks' counts to p), signals, waits for
/// every peer, and copies the received region out, so rows arrive in source-rank order as the protocol requires.
/// `allGather` (the per-expert counts of every layer) runs on the device too: a flag barrier, each rank's values
/// copied into every peer's receive region, a signal, one download. `allReduceSum` (end-of-run totals) goes through
/// the store; `send`/`recv` stage through the peer's region with a store handshake.
public final class NVLinkCommunicator<Buffer: CUDAMemory>: Communicator {
    /// The transport (shared with the dispatch/combine kernels).
    public let transport: NVLinkEP
    public var rank: Int { transport.rank }
    public var size: Int { transport.shape.ranks }
    let collectives: StoreCollectives
    let store: CommStore
    let name: String
    private let countScratch: DeviceArray<Int32>
    /// This rank's values of a device all-gather (grown on demand).
    private var gatherScratch: DeviceArray<Int32>?
    private var p2pSequence: [String: Int] = [:]
    /// The last `exchangeCounts` (its send counts and the `info` it derived), while no exchange has used the receive
    /// regions since: an `allToAllV` with the same counts reuses it instead of a second notify round.
    private var lastExchange: (counts: [Int], info: (sendBase: [Int], recvBase: [Int], recvCounts: [Int], sendPrefix: [Int], total: Int))?

    /// Wraps a transport; `store` and `name` must be the same on every rank.
    public init(transport: NVLinkEP, store: CommStore, name: String = "nvlink-comm") throws {
        self.transport = transport
        self.store = store
        self.name = name
        collectives = StoreCollectives(store: store, rank: transport.rank, size: transport.shape.ranks, name: name)
        countScratch = try DeviceArray<Int32>(transport.gpu, count: transport.shape.ranks)
    }

    /// Bytes of the receive region (what one all-to-all can deliver to a rank).
    public var regionBytes: Int { transport.layout.receiveRows * transport.layout.rowStride }

    func checkPeers(_ counts: [Int], _ what: String) throws {
        guard counts.count == size else {
            throw CommunicatorError.countMismatch(rank: rank, detail: "\(what) has \(counts.count) entries for \(size) ranks")
        }
        if let bad = counts.firstIndex(where: { $0 < 0 || $0 > Int(Int32.max) }) {
            throw CommunicatorError.countMismatch(rank: rank, detail: "\(what)[\(bad)] = \(counts[bad]) is out of range")
        }
    }

    public func exchangeCounts(_ sendCounts: [Int]) throws -> [Int] {
        try checkPeers(sendCounts, "sendCounts")
        try countScratch.upload(sendCounts.map { Int32($0) }, gpu: transport.gpu)
        try transport.notify(counts: countScratch.pointer)
        let info = try transport.info()
        lastExchange = (sendCounts, info)
        return info.recvCounts
    }

    public func allToAllV(send: Buffer, sendCounts: [Int], recv: Buffer, recvCounts: [Int], rowBytes: Int) throws {
        try checkPeers(sendCounts, "sendCounts")
        try checkPeers(recvCounts, "recvCounts")
        // The notify is also the entry barrier (every rank has copied its receive region out of the previous
        // exchange); right after `exchangeCounts` with these counts nothing has touched the regions since, so its
        // result stands.
        let info: (sendBase: [Int], recvBase: [Int], recvCounts: [Int], sendPrefix: [Int], total: Int)
        if let last = lastExchange, last.counts == sendCounts {
            info = last.info
        } else {
            try countScratch.upload(sendCounts.map { Int32($0) }, gpu: transport.gpu)
            try transport.notify(counts: countScratch.pointer)
            info = try transport.info()
        }
        lastExchange = nil
        guard info.recvCounts == recvCounts else {
            throw CommunicatorError.countMismatch(
                rank: rank, detail: "expected \(recvCounts) rows from the ranks, they send \(info.recvCounts)")
        }
        let sendBytes = sendCounts.reduce(0, +) * rowBytes
        guard sendBytes <= send.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: sendBytes, available: send.byteCount)
        }
        guard info.total * rowBytes <= recv.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: info.total * rowBytes, available: recv.byteCount)
        }
        // Every receiver's total must fit its region; this rank's blocks end at sendBase[p] + sendCounts[p].
        for p in 0..<size where (info.sendBase[p] + sendCounts[p]) * rowBytes > regionBytes {
            throw CommunicatorError.bufferTooSmall(
                rank: p, needed: (info.sendBase[p] + sendCounts[p]) * rowBytes, available: regionBytes)
        }
        guard info.total * rowBytes <= regionBytes else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: info.total * rowBytes, available: regionBytes)
        }
        let prefix = CommLayout.sendOffsets(counts: sendCounts)
        let blocks = (0..<size).map { p in
            (dst: transport.peerAddress(.receive, rank: p) + UInt64(info.sendBase[p] * rowBytes),
             src: send.devicePointer + UInt64(prefix[p] * rowBytes), bytes: sendCounts[p] * rowBytes)
        }
        try copy(blocks, "all-to-all block")
        try transport.signalAndWait(kind: 6)
        try copy([(recv.devicePointer, transport.localAddress(.receive), info.total * rowBytes)], "all-to-all receive")
        try transport.checkHealth()
    }

    /// All-gathers `values` (the same count on every rank) in rank order, on the device: after a flag barrier (every
    /// rank has copied its receive region out of the previous exchange), each rank copies its values into slot
    /// `rank` of every peer's receive region, signals, waits for all, and downloads its region. No store round trip,
    /// so a layer's counts exchange costs a few launches rather than a TCP request per rank. Values too many for
    /// the region go through the store.
    public func allGather(_ values: [Int32]) throws -> [Int32] {
        let n = values.count, bytes = values.count * 4
        if n == 0 { return [] }
        lastExchange = nil
        guard bytes * size <= regionBytes else { return try collectives.allGather(values) }
        let gpu = transport.gpu, api = gpu.context.api, s = gpu.stream.handle
        if (gatherScratch?.count ?? 0) < n { gatherScratch = try DeviceArray<Int32>(gpu, count: n) }
        let mine = gatherScratch!
        try transport.barrier()
        try values.withUnsafeBytes { raw in
            try api.check(api.cuMemcpyHtoDAsync(mine.pointer, raw.baseAddress, bytes, s), "cuMemcpyHtoDAsync(all-gather)")
        }
        try copy((0..<size).map { (transport.peerAddress(.receive, rank: $0) + UInt64(rank * bytes), mine.pointer, bytes) },
                 "all-gather block")
        try transport.signalAndWait(kind: 7)
        var out = [Int32](repeating: 0, count: n * size)
        try out.withUnsafeMutableBytes { raw in
            try api.check(api.cuMemcpyDtoHAsync(raw.baseAddress, transport.localAddress(.receive), raw.count, s),
                          "cuMemcpyDtoHAsync(all-gather)")
            try gpu.synchronize()
        }
        try transport.checkHealth()
        // Our own slot went through the same copies as every peer's: a cheap check that the exchange landed.
        guard Array(out[rank * n..<(rank + 1) * n]) == values else {
            throw CommunicatorError.countMismatch(rank: rank, detail: "device all-gather returned another rank's values")
        }
        return out
    }

    /// Device-to-device copies on the stream: one SM copy kernel (`NVLinkEP.copiesOnSMs`) or a copy-engine
    /// transfer per block.
    func copy(_ blocks: [(dst: CUdeviceptr, src: CUdeviceptr, bytes: Int)], _ what: String) throws {
        if NVLinkEP.copiesOnSMs { return try transport.copySegments(blocks) }
        let api = transport.gpu.context.api, s = transport.gpu.stream.handle
        for (i, b) in blocks.enumerated() where b.bytes > 0 {
            try api.check(api.cuMemcpyDtoDAsync(b.dst, b.src, b.bytes, s), "cuMemcpyDtoDAsync(\(what) \(i))")
        }
    }

    public func allReduceSum(_ values: [Double]) throws -> [Double] { try collectives.allReduceSum(values) }

    public func barrier() throws {
        lastExchange = nil
        try transport.barrier()
        try transport.checkHealth()
    }

    /// Per-source staging slot in a receiver's region.
    var slotBytes: Int { regionBytes / size / 256 * 256 }

    func nextKey(_ from: Int, _ to: Int, _ tag: Int) -> String {
        let k = "\(from)->\(to)/\(tag)"
        let n = p2pSequence[k, default: 0]
        p2pSequence[k] = n + 1
        return "\(name)/p2p/\(k)/\(n)"
    }

    public func send(_ buffer: Buffer, offset: Int, bytes: Int, to peer: Int, tag: Int) throws {
        try checkPointToPoint(buffer, offset: offset, bytes: bytes, peer: peer)
        lastExchange = nil
        let key = nextKey(rank, peer, tag), gpu = transport.gpu, api = gpu.context.api
        let slot = transport.peerAddress(.receive, rank: peer) + UInt64(rank * slotBytes)
        var done = 0, chunk = 0
        repeat {
            let n = min(slotBytes, bytes - done)
            _ = try store.get("\(key)/\(chunk)/ready", timeout: nil)
            if n > 0 {
                try api.check(api.cuMemcpyDtoDAsync(slot, buffer.devicePointer + UInt64(offset + done), n, gpu.stream.handle),
                              "cuMemcpyDtoDAsync(send to rank \(peer))")
            }
            try gpu.synchronize()
            try store.set("\(key)/\(chunk)/done", [1])
            done += n
            chunk += 1
        } while done < bytes
    }

    public func recv(into buffer: Buffer, offset: Int, bytes: Int, from peer: Int, tag: Int) throws {
        try checkPointToPoint(buffer, offset: offset, bytes: bytes, peer: peer)
        lastExchange = nil
        let key = nextKey(peer, rank, tag), gpu = transport.gpu, api = gpu.context.api
        let slot = transport.localAddress(.receive) + UInt64(peer * slotBytes)
        var done = 0, chunk = 0
        repeat {
            let n = min(slotBytes, bytes - done)
            try store.set("\(key)/\(chunk)/ready", [1])
            _ = try store.get("\(key)/\(chunk)/done", timeout: nil)
            if n > 0 {
                try api.check(api.cuMemcpyDtoDAsync(buffer.devicePointer + UInt64(offset + done), slot, n, gpu.stream.handle),
                              "cuMemcpyDtoDAsync(receive from rank \(peer))")
            }
            try gpu.synchronize()
            done += n
            chunk += 1
        } while done < bytes
    }
}
