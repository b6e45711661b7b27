import Foundation
import WideEPRuntime

/// State shared by the ranks of one thread group: posted buffers, count matrices and the barrier.
public final class ThreadGroup: @unchecked Sendable {
    /// Ranks in the group.
    public let size: Int
    let barrier: ThreadBarrier
    // One slot per rank in separately allocated memory: each rank writes only its own slot between barriers, and
    // plain pointers (unlike a shared Swift Array) make those concurrent writes to distinct slots race-free.
    let sendBase: UnsafeMutablePointer<UnsafeRawPointer?>
    let sendCounts: UnsafeMutablePointer<[Int]>
    let gathered: UnsafeMutablePointer<[Int32]>
    let reduced: UnsafeMutablePointer<[Double]>
    var mailbox: [MailKey: [[UInt8]]] = [:]
    let mailCond = NSCondition()

    struct MailKey: Hashable { let src: Int, dst: Int, tag: Int }

    public init(size: Int) {
        precondition(size >= 1, "a thread group needs at least one rank")
        self.size = size
        barrier = ThreadBarrier(count: size)
        sendBase = .allocate(capacity: size)
        sendBase.initialize(repeating: nil, count: size)
        sendCounts = .allocate(capacity: size)
        sendCounts.initialize(repeating: [], count: size)
        gathered = .allocate(capacity: size)
        gathered.initialize(repeating: [], count: size)
        reduced = .allocate(capacity: size)
        reduced.initialize(repeating: [], count: size)
    }

    deinit {
        sendBase.deallocate()
        sendCounts.deinitialize(count: size)
        sendCounts.deallocate()
        gathered.deinitialize(count: size)
        gathered.deallocate()
        reduced.deinitialize(count: size)
        reduced.deallocate()
    }

    /// One communicator per rank.
    public func communicators() -> [ThreadCommunicator] { (0..<size).map { ThreadCommunicator(group: self, rank: $0) } }

    /// Fails every rank blocked in (or later entering) a collective.
    public func abort(_ why: String) { barrier.abort(why) }
}

/// A `Communicator` for ranks that are threads of one process: exchanges go through shared memory and barriers.
///
/// Each collective posts this rank's data in the group, waits on the barrier, reads the peers' data, and waits again
/// so no rank reuses its buffers while a peer still reads them.
public final class ThreadCommunicator: Communicator, @unchecked Sendable {
    public typealias Buffer = HostBuffer

    public let rank: Int
    public var size: Int { group.size }
    let group: ThreadGroup

    init(group: ThreadGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    /// Throws after aborting the group, so peers blocked in the same collective fail too instead of hanging.
    private func fail(_ error: CommunicatorError) throws -> Never {
        group.abort("\(error)")
        throw error
    }

    public func allToAllV(
        send: HostBuffer, sendCounts: [Int], recv: HostBuffer, recvCounts: [Int], rowBytes: Int
    ) throws {
        let r = size
        guard sendCounts.count == r, recvCounts.count == r else {
            try fail(.countMismatch(rank: rank, detail: "expected \(r) send and receive counts, got "
                                    + "\(sendCounts.count) and \(recvCounts.count)"))
        }
        let sendBytes = sendCounts.reduce(0, +) * rowBytes, recvBytes = recvCounts.reduce(0, +) * rowBytes
        guard sendBytes <= send.byteCount else {
            try fail(.bufferTooSmall(rank: rank, needed: sendBytes, available: send.byteCount))
        }
        guard recvBytes <= recv.byteCount else {
            try fail(.bufferTooSmall(rank: rank, needed: recvBytes, available: recv.byteCount))
        }
        group.sendBase[rank] = UnsafeRawPointer(send.raw)
        group.sendCounts[rank] = sendCounts
        try group.barrier.wait()
        var dst = recv.raw
        for p in 0..<r {
            let theirs = group.sendCounts[p]
            guard theirs[rank] == recvCounts[p] else {
                try fail(.countMismatch(
                    rank: rank, detail: "peer \(p) sends \(theirs[rank]) rows but \(recvCounts[p]) are expected"))
            }
            var before = 0
            for q in 0..<rank { before += theirs[q] }
            let n = recvCounts[p] * rowBytes
            if n > 0 { dst.copyMemory(from: group.sendBase[p]! + before * rowBytes, byteCount: n) }
            dst += n
        }
        try group.barrier.wait()
    }

    public func exchangeCounts(_ sendCounts: [Int]) throws -> [Int] {
        guard sendCounts.count == size else {
            try fail(.countMismatch(rank: rank, detail: "expected \(size) counts, got \(sendCounts.count)"))
        }
        group.sendCounts[rank] = sendCounts
        try group.barrier.wait()
        let out = (0..<size).map { group.sendCounts[$0][rank] }
        try group.barrier.wait()
        return out
    }

    public func allGather(_ values: [Int32]) throws -> [Int32] {
        group.gathered[rank] = values
        try group.barrier.wait()
        var out: [Int32] = []
        out.reserveCapacity(values.count * size)
        for p in 0..<size {
            guard group.gathered[p].count == values.count else {
                try fail(.countMismatch(rank: rank, detail: "all-gather: peer \(p) has \(group.gathered[p].count) "
                                        + "values, this rank \(values.count)"))
            }
            out += group.gathered[p]
        }
        try group.barrier.wait()
        return out
    }

    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        group.reduced[rank] = values
        try group.barrier.wait()
        var out = [Double](repeating: 0, count: values.count)
        for p in 0..<size {
            guard group.reduced[p].count == values.count else {
                try fail(.countMismatch(rank: rank, detail: "all-reduce length differs on peer \(p)"))
            }
            for i in 0..<values.count { out[i] += group.reduced[p][i] }
        }
        try group.barrier.wait()
        return out
    }

    public func barrier() throws { try group.barrier.wait() }

    public func send(_ buffer: HostBuffer, offset: Int, bytes: Int, to peer: Int, tag: Int) throws {
        guard peer >= 0 && peer < size else { try fail(.invalidPeer(rank: rank, peer: peer, size: size)) }
        guard offset + bytes <= buffer.byteCount else {
            try fail(.bufferTooSmall(rank: rank, needed: offset + bytes, available: buffer.byteCount))
        }
        let data = [UInt8](UnsafeRawBufferPointer(start: buffer.raw + offset, count: bytes))
        group.mailCond.lock()
        group.mailbox[.init(src: rank, dst: peer, tag: tag), default: []].append(data)
        group.mailCond.broadcast()
        group.mailCond.unlock()
    }

    public func recv(into buffer: HostBuffer, offset: Int, bytes: Int, from peer: Int, tag: Int) throws {
        guard peer >= 0 && peer < size else { try fail(.invalidPeer(rank: rank, peer: peer, size: size)) }
        let key = ThreadGroup.MailKey(src: peer, dst: rank, tag: tag)
        group.mailCond.lock()
        while group.mailbox[key]?.isEmpty ?? true { group.mailCond.wait() }
        let data = group.mailbox[key]!.removeFirst()
        group.mailCond.unlock()
        guard data.count == bytes, offset + bytes <= buffer.byteCount else {
            throw CommunicatorError.countMismatch(
                rank: rank, detail: "recv from \(peer) tag \(tag): got \(data.count) bytes, expected \(bytes)")
        }
        data.withUnsafeBytes { (buffer.raw + offset).copyMemory(from: $0.baseAddress!, byteCount: bytes) }
    }
}
