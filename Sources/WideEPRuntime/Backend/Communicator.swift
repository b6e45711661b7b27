/// The communication half of a backend: collectives between the EP ranks of one group.
///
/// One instance per rank. Every collective must be called by all `size` ranks in the same order (like NCCL/MPI).
/// Device-data exchanges take backend buffers of the same backend as the kernels (`Buffer`); small control values
/// (counts) travel as host arrays, and an implementation may stage them through device memory.
public protocol Communicator: AnyObject {
    /// The backend's memory handle (same type as the kernels').
    associatedtype Buffer: DeviceBuffer

    /// This rank, 0..<size.
    var rank: Int { get }
    /// Ranks in the group (EP size R).
    var size: Int { get }

    /// All-to-all-v of fixed-size rows: `send` holds `sendCounts[p]` rows for each peer p in rank order
    /// (contiguous), and `recv` receives `recvCounts[p]` rows from each peer p in rank order. Counts may be uneven and
    /// zero. `rowBytes` is the size of one row; `recvCounts` must match the peers' `sendCounts[rank]`
    /// (use `exchangeCounts` first). `send` may be reused once this returns.
    func allToAllV(send: Buffer, sendCounts: [Int], recv: Buffer, recvCounts: [Int], rowBytes: Int) throws
    /// All-to-all of one count per peer: returns what each peer passed for this rank, [size].
    func exchangeCounts(_ sendCounts: [Int]) throws -> [Int]
    /// All-gather of equal-length int32 arrays: returns every rank's `values` concatenated in rank order,
    /// [size × values.count].
    func allGather(_ values: [Int32]) throws -> [Int32]
    /// Element-wise sum of `values` over all ranks, returned on every rank.
    func allReduceSum(_ values: [Double]) throws -> [Double]
    /// Returns when every rank has entered it.
    func barrier() throws
    /// Point-to-point send of `bytes` bytes of `buffer` from byte `offset` to `peer` (migration copies); matched by
    /// `recv` on the peer with the same `tag`. Blocks until the data is delivered or buffered.
    func send(_ buffer: Buffer, offset: Int, bytes: Int, to peer: Int, tag: Int) throws
    /// Receives a matching `send` from `peer` into `buffer` at byte `offset`.
    func recv(into buffer: Buffer, offset: Int, bytes: Int, from peer: Int, tag: Int) throws
}

/// A communication failure or misuse (mismatched counts, bad peer).
public enum CommunicatorError: Error, CustomStringConvertible, Equatable {
    case invalidPeer(rank: Int, peer: Int, size: Int)
    case countMismatch(rank: Int, detail: String)
    case bufferTooSmall(rank: Int, needed: Int, available: Int)
    case aborted(String)

    public var description: String {
        switch self {
        case let .invalidPeer(rank, peer, size): return "rank \(rank): peer \(peer) is not in 0..<\(size)"
        case let .countMismatch(rank, detail): return "rank \(rank): all-to-all count mismatch: \(detail)"
        case let .bufferTooSmall(rank, needed, available):
            return "rank \(rank): buffer too small: needs \(needed) bytes, has \(available)"
        case let .aborted(why): return "communicator aborted: \(why)"
        }
    }
}

extension Communicator {
    /// Checks a point-to-point request before any data moves: `peer` must be another rank of the group (or this rank
    /// when `allowSelf`), and `[offset, offset + bytes)` must lie inside `buffer`.
    public func checkPointToPoint(_ buffer: Buffer, offset: Int, bytes: Int, peer: Int, allowSelf: Bool = false) throws {
        guard peer >= 0, peer < size, allowSelf || peer != rank else {
            throw CommunicatorError.invalidPeer(rank: rank, peer: peer, size: size)
        }
        guard offset >= 0, bytes >= 0, offset + bytes <= buffer.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: offset + bytes, available: buffer.byteCount)
        }
    }
}
