import Foundation
import WideEPRuntime

/// The key-value store the ranks of a multi-process job meet through (the rendezvous `TCPStore` in a real job; an
/// in-memory one in tests). `get` blocks until some rank `set`s the key.
public protocol RankStore: AnyObject {
    /// Stores `value` under `key` (keys are never reused by `StoreCommunicator`).
    func set(_ key: String, _ value: [UInt8]) throws
    /// Reads `key`, waiting until some rank sets it (up to `timeout` seconds, the store's default when nil).
    func get(_ key: String, timeout: Double?) throws -> [UInt8]
}

/// A `Communicator` for ranks that are separate processes, with every exchange going through a `RankStore`.
///
/// Each collective takes the next sequence number `n` (every rank calls collectives in the same order, so `n` agrees
/// on all ranks) and posts one blob per peer under `"<prefix>/<n>/<src>><dst>"`; the peer reads it with a blocking
/// `get`. A rank's own share is copied locally. Point-to-point messages use `"<prefix>/p2p/<src>><dst>/<tag>/<i>"`
/// with a per-(peer, tag) counter on both sides.
///
/// Slow (one store round trip per peer and collective) but exact; it exists so the process-per-rank path runs
/// without a GPU. Keys are never deleted, so the store on rank 0 grows by the bytes exchanged: a correctness check,
/// not a transport for long runs.
public final class StoreCommunicator: Communicator, @unchecked Sendable {
    public typealias Buffer = HostBuffer

    public let rank: Int
    public let size: Int
    let store: RankStore
    let prefix: String
    let timeout: Double?
    private var sequence = 0
    private var sent: [PeerTag: Int] = [:]
    private var received: [PeerTag: Int] = [:]

    struct PeerTag: Hashable { let peer: Int, tag: Int }

    /// - Parameters:
    ///   - prefix: namespace of this communicator's keys; every rank of the group passes the same one, and two
    ///     groups on one store need different ones.
    ///   - timeout: seconds a rank waits for a peer's blob (the store's default when nil).
    public init(store: RankStore, rank: Int, size: Int, prefix: String, timeout: Double? = nil) throws {
        guard size >= 1, rank >= 0, rank < size else { throw CommunicatorError.invalidPeer(rank: rank, peer: rank, size: size) }
        self.store = store
        self.rank = rank
        self.size = size
        self.prefix = prefix
        self.timeout = timeout
    }

    private func nextKey() -> String {
        defer { sequence += 1 }
        return "\(prefix)/\(sequence)"
    }

    /// Posts `blobs[p]` for every peer p ≠ rank and returns what every peer posted for this rank (own share in place).
    private func exchange(_ blobs: [[UInt8]]) throws -> [[UInt8]] {
        let key = nextKey()
        for p in 0..<size where p != rank { try store.set("\(key)/\(rank)>\(p)", blobs[p]) }
        return try (0..<size).map { p in p == rank ? blobs[p] : try store.get("\(key)/\(p)>\(rank)", timeout: timeout) }
    }

    public func allToAllV(
        send: HostBuffer, sendCounts: [Int], recv: HostBuffer, recvCounts: [Int], rowBytes: Int
    ) throws {
        guard sendCounts.count == size, recvCounts.count == size else {
            throw CommunicatorError.countMismatch(
                rank: rank, detail: "expected \(size) send and receive counts, got \(sendCounts.count) and \(recvCounts.count)")
        }
        let sendBytes = sendCounts.reduce(0, +) * rowBytes, recvBytes = recvCounts.reduce(0, +) * rowBytes
        guard sendBytes <= send.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: sendBytes, available: send.byteCount)
        }
        guard recvBytes <= recv.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: recvBytes, available: recv.byteCount)
        }
        var blobs: [[UInt8]] = []
        var offset = 0
        for p in 0..<size {
            let n = sendCounts[p] * rowBytes
            blobs.append([UInt8](UnsafeRawBufferPointer(start: send.raw + offset, count: n)))
            offset += n
        }
        let got = try exchange(blobs)
        var dst = recv.raw
        for p in 0..<size {
            let n = recvCounts[p] * rowBytes
            guard got[p].count == n else {
                throw CommunicatorError.countMismatch(
                    rank: rank, detail: "peer \(p) sent \(got[p].count / max(rowBytes, 1)) rows but \(recvCounts[p]) are expected")
            }
            if n > 0 { got[p].withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: n) } }
            dst += n
        }
    }

    public func exchangeCounts(_ sendCounts: [Int]) throws -> [Int] {
        guard sendCounts.count == size else {
            throw CommunicatorError.countMismatch(rank: rank, detail: "expected \(size) counts, got \(sendCounts.count)")
        }
        let got = try exchange(sendCounts.map { Self.bytes([Int64($0)]) })
        return try got.enumerated().map { p, b in
            let v: [Int64] = Self.values(b)
            guard v.count == 1 else {
                throw CommunicatorError.countMismatch(rank: rank, detail: "peer \(p) sent a malformed count (\(b.count) bytes)")
            }
            return Int(v[0])
        }
    }

    public func allGather(_ values: [Int32]) throws -> [Int32] {
        let mine = Self.bytes(values)
        let got = try exchange(Array(repeating: mine, count: size))
        var out: [Int32] = []
        out.reserveCapacity(values.count * size)
        for (p, b) in got.enumerated() {
            guard b.count == mine.count else {
                throw CommunicatorError.countMismatch(
                    rank: rank, detail: "all-gather: peer \(p) has \(b.count / 4) values, this rank \(values.count)")
            }
            out += Self.values(b) as [Int32]
        }
        return out
    }

    /// Sums in rank order on every rank, so all ranks get bit-identical results.
    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        let mine = Self.bytes(values)
        let got = try exchange(Array(repeating: mine, count: size))
        var out = [Double](repeating: 0, count: values.count)
        for (p, b) in got.enumerated() {
            guard b.count == mine.count else {
                throw CommunicatorError.countMismatch(rank: rank, detail: "all-reduce length differs on peer \(p)")
            }
            let v: [Double] = Self.values(b)
            for i in 0..<values.count { out[i] += v[i] }
        }
        return out
    }

    public func barrier() throws { _ = try exchange(Array(repeating: [], count: size)) }

    public func send(_ buffer: HostBuffer, offset: Int, bytes: Int, to peer: Int, tag: Int) throws {
        try checkPointToPoint(buffer, offset: offset, bytes: bytes, peer: peer, allowSelf: true)
        let key = PeerTag(peer: peer, tag: tag)
        let i = sent[key, default: 0]
        sent[key] = i + 1
        try store.set("\(prefix)/p2p/\(rank)>\(peer)/\(tag)/\(i)",
                      [UInt8](UnsafeRawBufferPointer(start: buffer.raw + offset, count: bytes)))
    }

    public func recv(into buffer: HostBuffer, offset: Int, bytes: Int, from peer: Int, tag: Int) throws {
        try checkPointToPoint(buffer, offset: offset, bytes: bytes, peer: peer, allowSelf: true)
        let key = PeerTag(peer: peer, tag: tag)
        let i = received[key, default: 0]
        received[key] = i + 1
        let data = try store.get("\(prefix)/p2p/\(peer)>\(rank)/\(tag)/\(i)", timeout: timeout)
        guard data.count == bytes else {
            throw CommunicatorError.countMismatch(
                rank: rank, detail: "recv from \(peer) tag \(tag): got \(data.count) bytes, expected \(bytes)")
        }
        if bytes > 0 { data.withUnsafeBytes { (buffer.raw + offset).copyMemory(from: $0.baseAddress!, byteCount: bytes) } }
    }

    static func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    static func values<T>(_ bytes: [UInt8]) -> [T] {
        let n = bytes.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: n) { out, count in
            bytes.withUnsafeBytes { src in
                if n > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: src.baseAddress!, byteCount: n * MemoryLayout<T>.stride) }
            }
            count = n
        }
    }
}
