import Foundation
import Testing
import WideEPCPU
import WideEPRuntime
import WideEPTestSupport

/// An in-memory `RankStore`: `get` waits on a condition until the key is set.
final class MemoryRankStore: RankStore, @unchecked Sendable {
    private let cond = NSCondition()
    private var values: [String: [UInt8]] = [:]

    func set(_ key: String, _ value: [UInt8]) throws {
        cond.lock()
        values[key] = value
        cond.broadcast()
        cond.unlock()
    }

    func get(_ key: String, timeout: Double?) throws -> [UInt8] {
        cond.lock()
        defer { cond.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout ?? 10)
        while values[key] == nil {
            guard cond.wait(until: deadline) else { throw CommunicatorError.aborted("timed out waiting for \(key)") }
        }
        return values[key]!
    }
}

@Suite struct StoreCommunicatorTests {
    /// Runs `body(rank, communicator)` on `ranks` threads sharing one store.
    static func onRanks(_ ranks: Int, _ body: @escaping @Sendable (Int, StoreCommunicator) throws -> Void) throws {
        let store = MemoryRankStore()
        let comms = try (0..<ranks).map { try StoreCommunicator(store: store, rank: $0, size: ranks, prefix: "t", timeout: 10) }
        let errors = ErrorBox()
        // One real thread per rank: ranks block on each other, so they must all run at once whatever the core count.
        let done = DispatchGroup()
        for rank in 0..<ranks {
            done.enter()
            Thread {
                do { try body(rank, comms[rank]) } catch { errors.add("\(error)") }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(errors.messages.isEmpty, "\(errors.messages)")
    }

    @Test(arguments: [1, 2, 3, 5])
    func collectivesMatchTheirDefinitions(ranks: Int) throws {
        var g = SplitMix64(seed: UInt64(ranks) &+ 11)
        let counts = (0..<ranks).map { _ in (0..<ranks).map { _ in Bool.random(using: &g) ? 0 : Int.random(in: 1...6, using: &g) } }
        let gathered = (0..<ranks).map { _ in (0..<4).map { _ in Int32.random(in: -1000...1000, using: &g) } }
        let reduced = (0..<ranks).map { _ in (0..<3).map { _ in Double.random(in: -1...1, using: &g) } }
        // Row i from src to dst (4 int32) is (src, dst, i, 99).
        @Sendable func rows(_ src: Int, _ dst: Int) -> [Int32] {
            (0..<counts[src][dst]).flatMap { [Int32(src), Int32(dst), Int32($0), 99] }
        }
        try Self.onRanks(ranks) { rank, c in
            let recvCounts = try c.exchangeCounts(counts[rank])
            try ensure(recvCounts == (0..<ranks).map { counts[$0][rank] }, "recvCounts == (0..<ranks).map { counts[$0][rank] }")
            let send = (0..<ranks).flatMap { rows(rank, $0) }
            let sb = HostBuffer(byteCount: send.count * 4), rb = HostBuffer(byteCount: recvCounts.reduce(0, +) * 16)
            send.withUnsafeBytes { sb.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            try c.allToAllV(send: sb, sendCounts: counts[rank], recv: rb, recvCounts: recvCounts, rowBytes: 16)
            let got = Array(UnsafeBufferPointer(start: rb.ints, count: recvCounts.reduce(0, +) * 4))
            try ensure(got == (0..<ranks).flatMap { rows($0, rank) }, "got == (0..<ranks).flatMap { rows($0, rank) }")
            try ensure(try c.allGather(gathered[rank]) == gathered.flatMap { $0 }, "all-gather on rank \(rank)")
            let sum = try c.allReduceSum(reduced[rank])
            for i in 0..<3 { try ensure(abs(sum[i] - reduced.reduce(0) { $0 + $1[i] }) < 1e-12, "all-reduce element \(i)") }
            try c.barrier()
            // A ring of point-to-point messages, two per pair with the same tag, received in order.
            let next = (rank + 1) % ranks, prev = (rank + ranks - 1) % ranks
            for round in 0..<2 {
                let out = HostBuffer(byteCount: 8)
                out.ints[0] = Int32(rank)
                out.ints[1] = Int32(round)
                try c.send(out, offset: 0, bytes: 8, to: next, tag: 5)
            }
            for round in 0..<2 {
                let inb = HostBuffer(byteCount: 16)
                try c.recv(into: inb, offset: 8, bytes: 8, from: prev, tag: 5)
                try ensure(inb.ints[2] == Int32(prev) && inb.ints[3] == Int32(round), "inb.ints[2] == Int32(prev) && inb.ints[3] == Int32(round)")
            }
        }
    }

    @Test func mismatchedCountsAreReported() throws {
        try Self.onRanks(2) { rank, c in
            let sb = HostBuffer(byteCount: 64), rb = HostBuffer(byteCount: 64)
            // Rank 0 sends 2 rows to rank 1, but rank 1 expects 1.
            let sendCounts = rank == 0 ? [0, 2] : [0, 0], recvCounts = rank == 0 ? [0, 0] : [1, 0]
            do {
                try c.allToAllV(send: sb, sendCounts: sendCounts, recv: rb, recvCounts: recvCounts, rowBytes: 4)
                try ensure(rank == 0, "rank == 0")
            } catch let e as CommunicatorError {
                try ensure(rank == 1, "rank == 1")
                try ensure("\(e)".contains("peer 0 sent 2 rows but 1 are expected"), "message: \(e)")
            }
        }
    }
}

/// Throws (so `onRanks` records it for the test) unless `ok`; rank threads cannot record issues themselves.
func ensure(_ ok: Bool, _ what: String) throws {
    if !ok { throw CommunicatorError.aborted("expectation failed: \(what)") }
}

/// Error messages collected from rank threads.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var messages: [String] = []

    func add(_ m: String) {
        lock.lock()
        messages.append(m)
        lock.unlock()
    }
}
