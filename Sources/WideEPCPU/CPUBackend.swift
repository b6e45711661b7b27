import Foundation
import WideEPRuntime

/// The CPU backend: R ranks as threads of this process, each with its own `CPUKernels` and a `ThreadCommunicator`.
public final class CPUBackend: MoEBackend, @unchecked Sendable {
    public typealias Kernels = CPUKernels
    public typealias Comm = ThreadCommunicator

    public let numRanks: Int
    public var deviceName: String { WideEPCPU.deviceName }
    public var localRanks: [Int] { Array(0..<numRanks) }

    private var group: ThreadGroup
    private var comms: [ThreadCommunicator]
    private let kernelsByRank: [CPUKernels]
    private let pool: RankThreadPool

    /// Creates R rank threads. Compute workers are split over ranks: max(1, cores / R) each, where cores is
    /// `options.workerThreads` or the active processor count.
    public init(options: BackendOptions) throws {
        guard options.numRanks >= 1 else { throw BackendError.unavailable("cpu", reason: "ep-size must be >= 1") }
        numRanks = options.numRanks
        let cores = options.workerThreads > 0 ? options.workerThreads : ProcessInfo.processInfo.activeProcessorCount
        let perRank = max(1, cores / options.numRanks)
        group = ThreadGroup(size: numRanks)
        comms = group.communicators()
        kernelsByRank = (0..<numRanks).map { _ in CPUKernels(workers: perRank) }
        pool = RankThreadPool(count: numRanks)
    }

    public func kernels(rank: Int) -> CPUKernels { kernelsByRank[rank] }
    public func communicator(rank: Int) -> ThreadCommunicator { comms[rank] }

    public func runRanks(_ body: @escaping (Int) throws -> Void) throws {
        let g = group
        do {
            try pool.run(body, onError: { g.abort("a rank failed: \($0)") })
        } catch {
            // An aborted group stays aborted; start a fresh one so the backend stays usable.
            group = ThreadGroup(size: numRanks)
            comms = group.communicators()
            throw error
        }
    }

    /// Registers "cpu" in the `BackendRegistry`.
    public static func register() {
        BackendRegistry.register(.init(name: WideEPCPU.deviceName, make: { try CPUBackend(options: $0) }))
    }
}
