import CUDADriver
import Foundation
import WideEPRuntime

/// The key-value store ranks meet through (the rendezvous TCP store in a real job; an in-memory one in tests).
public protocol CommStore: AnyObject {
    /// Stores `value` under `key`.
    func set(_ key: String, _ value: [UInt8]) throws
    /// Reads `key`, waiting until some rank sets it (up to `timeout` seconds, the store's default when nil).
    func get(_ key: String, timeout: Double?) throws -> [UInt8]
}

/// One `cuMemAlloc` allocation per rank, mapped into every other rank of the node through CUDA IPC handles
/// exchanged in the store: `pointers[p]` is rank p's buffer as seen from this process (the local pointer for itself).
///
/// Rules (GPU-EP-KERNELS.md §0): only an allocation base is exported; a rank never opens its own handle; the buffer is
/// zeroed before its handle is published (so flags start at epoch 0); every importer closes its mappings, then all
/// ranks pass a store barrier, and only then does the owner free its allocation.
public final class PeerMemory {
    /// This rank and the group size.
    public let rank: Int, size: Int
    /// Bytes of each rank's buffer.
    public let byteCount: Int
    /// Each rank's buffer, mapped here.
    public let pointers: [CUdeviceptr]
    let gpu: GPU
    let symbols: IPCSymbols
    let store: CommStore
    let name: String
    private var closed = false

    /// Allocates `byteCount` zeroed bytes, publishes the handle under `name`, and opens every peer's.
    public init(gpu: GPU, rank: Int, size: Int, byteCount: Int, store: CommStore, name: String) throws {
        symbols = try IPCSymbols.load()
        let api = gpu.context.api
        self.gpu = gpu
        self.rank = rank
        self.size = size
        self.byteCount = byteCount
        self.store = store
        self.name = name
        var base: CUdeviceptr = 0
        try api.check(api.cuMemAlloc(&base, byteCount), "cuMemAlloc(\(byteCount) bytes, symmetric buffer)")
        var opened: [Int: CUdeviceptr] = [:]
        do {
            try api.check(api.cuMemsetD8Async(base, 0, byteCount, gpu.stream.handle), "cuMemsetD8Async(symmetric)")
            try gpu.synchronize()
            var record = try symbols.exportHandle(base)
            withUnsafeBytes(of: UInt64(byteCount).littleEndian) { record += $0 }
            try store.set("\(name)/ipc/\(rank)", record)
            for p in 0..<size where p != rank {
                let rec = try store.get("\(name)/ipc/\(p)", timeout: nil)
                guard rec.count == 72 else {
                    throw CommunicatorError.aborted("rank \(rank): malformed IPC record from rank \(p) (\(rec.count) bytes)")
                }
                let peerBytes = rec[64..<72].withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
                guard peerBytes == byteCount else {
                    throw CommunicatorError.countMismatch(
                        rank: rank, detail: "rank \(p) allocated \(peerBytes) symmetric bytes, this rank \(byteCount)")
                }
                opened[p] = try symbols.openHandle(Array(rec[0..<64]))
            }
        } catch {
            for (_, ptr) in opened { _ = try? symbols.closeHandle(ptr) }
            _ = api.cuMemFree(base)
            throw error
        }
        pointers = (0..<size).map { $0 == rank ? base : opened[$0]! }
    }

    /// Closes the peer mappings, waits (bounded) until every rank closed its mappings of this buffer, then frees it.
    public func close(timeout: Double = 30) {
        if closed { return }
        closed = true
        for p in 0..<size where p != rank { _ = try? symbols.closeHandle(pointers[p]) }
        _ = try? store.set("\(name)/closed/\(rank)", [1])
        for p in 0..<size where p != rank { _ = try? store.get("\(name)/closed/\(p)", timeout: timeout) }
        _ = gpu.context.api.cuMemFree(pointers[rank])
    }

    deinit { close() }
}
