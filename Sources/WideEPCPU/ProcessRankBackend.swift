import Foundation
import WideEPRuntime

/// The CPU backend of a multi-process job: this process drives one EP rank (`localRanks == [rank]`) with its own
/// `CPUKernels`, and talks to the other ranks (processes) through a `StoreCommunicator` on the job's store.
///
/// It is the CPU twin of the process-per-GPU CUDA backend: slow, but it runs the multi-process serving path
/// (identical decisions on every rank, cross-rank totals) anywhere, e.g. in CI without a GPU.
public final class ProcessRankBackend: MoEBackend, @unchecked Sendable {
    public typealias Kernels = CPUKernels
    public typealias Comm = StoreCommunicator

    public let numRanks: Int
    /// This process's rank.
    public let rank: Int
    public var deviceName: String { WideEPCPU.deviceName }
    public var localRanks: [Int] { [rank] }
    let k: CPUKernels
    let comm: StoreCommunicator

    /// - Parameters:
    ///   - workers: compute threads of this rank's kernels (≥ 1).
    ///   - prefix: key namespace of the communicator; every rank passes the same one for the same backend.
    public init(store: RankStore, rank: Int, size: Int, workers: Int, prefix: String) throws {
        numRanks = size
        self.rank = rank
        k = CPUKernels(workers: workers)
        comm = try StoreCommunicator(store: store, rank: rank, size: size, prefix: prefix)
    }

    public func kernels(rank: Int) -> CPUKernels { k }
    public func communicator(rank: Int) -> StoreCommunicator { comm }
    public func runRanks(_ body: @escaping (Int) throws -> Void) throws { try body(rank) }

    /// Replaces the "cpu" registry entry for a joined job of `size` processes (`localSize` of them on this host):
    /// `--ep-size` must equal `size`. Compute threads per rank: `options.workerThreads` (or the active processor
    /// count) divided by `localSize`, at least 1 — the same share each rank gets as a thread of `CPUBackend`.
    /// Each backend made gets a fresh key namespace; ranks make backends in the same order, so namespaces agree.
    public static func register(store: RankStore, rank: Int, size: Int, localSize: Int) {
        let counter = Counter()
        BackendRegistry.register(.init(name: WideEPCPU.deviceName, make: { options in
            guard options.numRanks == size else {
                throw BackendError.unavailable(
                    WideEPCPU.deviceName,
                    reason: "the EP size (\(options.numRanks)) must equal the launched world size (\(size)): one process per rank")
            }
            let cores = options.workerThreads > 0 ? options.workerThreads : ProcessInfo.processInfo.activeProcessorCount
            return try ProcessRankBackend(
                store: store, rank: rank, size: size, workers: max(1, cores / max(1, localSize)),
                prefix: "cpu-ep/\(counter.next())")
        }))
    }
}

/// A thread-safe increasing counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}
