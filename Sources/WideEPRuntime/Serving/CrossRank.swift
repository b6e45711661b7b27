import Foundation

/// Combines per-process values over every process of a backend's group (a multi-process job), with the backend's
/// own collectives. Every process must call the same functions in the same order with the same lengths.
enum CrossRank {
    /// Element-wise sum over processes of each process's `values`.
    static func sum<B: MoEBackend>(_ backend: B, _ values: [Double]) throws -> [Double] {
        let first = backend.localRanks[0]
        return try collect(backend) { rank in
            // One contribution per process: the first local rank's.
            try backend.communicator(rank: rank).allReduceSum(
                rank == first ? values : [Double](repeating: 0, count: values.count))
        }
    }

    /// Element-wise maximum over processes of each process's `values` (NaN wins, so a bad value is never hidden).
    static func max<B: MoEBackend>(_ backend: B, _ values: [Double]) throws -> [Double] {
        let n = values.count, r = backend.numRanks
        let all = try collect(backend) { rank in
            // Each rank writes its own slice of an R × n vector; the sum then holds every rank's values.
            var slots = [Double](repeating: 0, count: r * n)
            for i in 0..<n { slots[rank * n + i] = values[i] }
            return try backend.communicator(rank: rank).allReduceSum(slots)
        }
        return (0..<n).map { i in
            var m = all[i]
            for p in 1..<Swift.max(r, 1) {
                let v = all[p * n + i]
                if v.isNaN || v > m { m = v }
            }
            return m
        }
    }

    /// Runs `body` on every local rank (collectives need all of them) and returns the first local rank's result.
    private static func collect<B: MoEBackend>(_ backend: B, _ body: @escaping (Int) throws -> [Double]) throws -> [Double] {
        let box = ResultBox()
        let first = backend.localRanks[0]
        try backend.runRanks { rank in
            let v = try body(rank)
            if rank == first { box.set(v) }
        }
        return box.get()
    }
}

/// Holds one result written from a rank thread.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: [Double] = []

    func set(_ v: [Double]) {
        lock.lock()
        value = v
        lock.unlock()
    }

    func get() -> [Double] {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
