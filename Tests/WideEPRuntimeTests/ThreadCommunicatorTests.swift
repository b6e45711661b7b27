import Foundation
import Testing
import WideEPCPU
import WideEPRuntime
import WideEPTestSupport

@Suite struct ThreadCommunicatorTests {
    /// Every (src, dst) pair sends `counts[src][dst]` rows; row i from src to dst holds (src, dst, i, salt).
    static func exchange(counts: [[Int]], salt: Int32) throws -> [[Int32]] {
        let r = counts.count
        let backend = try CPUBackend(options: BackendOptions(numRanks: r, workerThreads: 1))
        let box = IntBox(count: r)
        try backend.runRanks { rank in
            let k = backend.kernels(rank: rank), c = backend.communicator(rank: rank)
            let sendCounts = counts[rank]
            var send: [Int32] = []
            for dst in 0..<r {
                for i in 0..<sendCounts[dst] { send += [Int32(rank), Int32(dst), Int32(i), salt] }
            }
            let recvCounts = try c.exchangeCounts(sendCounts)
            let sb = try k.allocate(.int32, count: send.count), rb = try k.allocate(.int32, count: recvCounts.reduce(0, +) * 4)
            try send.withUnsafeBytes { try k.upload($0, to: sb, offset: 0) }
            try c.allToAllV(send: sb, sendCounts: sendCounts, recv: rb, recvCounts: recvCounts, rowBytes: 16)
            var got = [Int32](repeating: 0, count: recvCounts.reduce(0, +) * 4)
            try got.withUnsafeMutableBytes { try k.download(rb, offset: 0, into: $0) }
            box.set(rank, got)
        }
        return box.values
    }

    @Test(arguments: [1, 2, 3, 5, 8])
    func allToAllVDeliversUnevenAndEmptySends(ranks: Int) throws {
        var g = SplitMix64(seed: UInt64(ranks))
        // Uneven counts with many zeros, including a rank that sends nothing at all.
        var counts = (0..<ranks).map { _ in (0..<ranks).map { _ in Bool.random(using: &g) ? 0 : Int.random(in: 1...7, using: &g) } }
        counts[ranks - 1] = Array(repeating: 0, count: ranks)
        let got = try Self.exchange(counts: counts, salt: 77)
        for dst in 0..<ranks {
            var expected: [Int32] = []
            for src in 0..<ranks {
                for i in 0..<counts[src][dst] { expected += [Int32(src), Int32(dst), Int32(i), 77] }
            }
            #expect(got[dst] == expected, "rank \(dst)")
        }
    }

    @Test func collectivesGatherReduceAndPointToPoint() throws {
        let r = 4
        let backend = try CPUBackend(options: BackendOptions(numRanks: r, workerThreads: 1))
        let gathered = IntBox(count: r), reduced = DoubleBox(count: r), received = IntBox(count: r)
        try backend.runRanks { rank in
            let c = backend.communicator(rank: rank), k = backend.kernels(rank: rank)
            gathered.set(rank, try c.allGather([Int32(rank), Int32(rank * 10)]))
            reduced.set(rank, try c.allReduceSum([Double(rank), 1]))
            try c.barrier()
            // Ring: send to the next rank, receive from the previous one.
            let b = try k.allocate(.int32, count: 3)
            let mine: [Int32] = [Int32(rank), 5, -1]
            try mine.withUnsafeBytes { try k.upload($0, to: b, offset: 0) }
            try c.send(b, offset: 0, bytes: 12, to: (rank + 1) % r, tag: 9)
            let rb = try k.allocate(.int32, count: 3)
            try c.recv(into: rb, offset: 0, bytes: 12, from: (rank + r - 1) % r, tag: 9)
            var out = [Int32](repeating: 0, count: 3)
            try out.withUnsafeMutableBytes { try k.download(rb, offset: 0, into: $0) }
            received.set(rank, out)
        }
        for rank in 0..<r {
            #expect(gathered.values[rank] == [0, 0, 1, 10, 2, 20, 3, 30])
            #expect(reduced.values[rank] == [6, 4])
            #expect(received.values[rank] == [Int32((rank + r - 1) % r), 5, -1])
        }
    }

    @Test func mismatchedCountsFailEveryRankInsteadOfHanging() throws {
        let backend = try CPUBackend(options: BackendOptions(numRanks: 3, workerThreads: 1))
        #expect(throws: CommunicatorError.self) {
            try backend.runRanks { rank in
                let c = backend.communicator(rank: rank), k = backend.kernels(rank: rank)
                let b = try k.allocate(.int32, count: 16)
                // Rank 1 expects one row too many from rank 0.
                let recv = rank == 1 ? [2, 1, 1] : [1, 1, 1]
                try c.allToAllV(send: b, sendCounts: [1, 1, 1], recv: b, recvCounts: recv, rowBytes: 4)
            }
        }
        // The backend recovers with a fresh group.
        let got = IntBox(count: 3)
        try backend.runRanks { rank in got.set(rank, try backend.communicator(rank: rank).allGather([Int32(rank)])) }
        #expect(got.values[2] == [0, 1, 2])
    }
}

final class IntBox: @unchecked Sendable {
    private var v: [[Int32]]
    private let l = NSLock()
    init(count: Int) { v = Array(repeating: [], count: count) }
    func set(_ i: Int, _ x: [Int32]) { l.lock(); v[i] = x; l.unlock() }
    var values: [[Int32]] { l.lock(); defer { l.unlock() }; return v }
}

final class DoubleBox: @unchecked Sendable {
    private var v: [[Double]]
    private let l = NSLock()
    init(count: Int) { v = Array(repeating: [], count: count) }
    func set(_ i: Int, _ x: [Double]) { l.lock(); v[i] = x; l.unlock() }
    var values: [[Double]] { l.lock(); defer { l.unlock() }; return v }
}
