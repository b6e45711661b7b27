import Foundation

/// A backend: per-rank kernels and communicators, and a way to run code on every rank this process drives.
///
/// The CPU backend drives all R ranks as threads of one process; a process-per-GPU backend drives one rank
/// (`localRanks == [rank]`) and `runRanks` simply calls the body for it.
public protocol MoEBackend: AnyObject {
    /// The kernels of one rank.
    associatedtype Kernels: MoEKernels
    /// The communicator of one rank, sharing the kernels' buffer type.
    associatedtype Comm: Communicator where Comm.Buffer == Kernels.Buffer

    /// Backend name ("cpu", "cuda").
    var deviceName: String { get }
    /// EP size R of the group.
    var numRanks: Int { get }
    /// Ranks driven by this process, ascending.
    var localRanks: [Int] { get }
    /// Kernels of local rank `rank`.
    func kernels(rank: Int) -> Kernels
    /// Communicator of local rank `rank`.
    func communicator(rank: Int) -> Comm
    /// Relative error against the float64-accumulated dense reference that this backend's arithmetic stays
    /// within (1e-4 for float32 compute; bf16 tensor-core GEMMs need about 1e-2, per the GPU method notes).
    var referenceTolerance: Double { get }
    /// Runs `body(rank)` concurrently for every local rank and returns when all are done; rethrows the first error.
    /// Bodies call collectives, so they must really run concurrently (not one after another).
    func runRanks(_ body: @escaping (Int) throws -> Void) throws
}

/// What a backend is built for.
public struct BackendOptions: Sendable, Equatable {
    /// EP size R.
    public var numRanks: Int
    /// Worker threads the whole backend may use for compute (CPU); 0 means all cores.
    public var workerThreads: Int

    public init(numRanks: Int, workerThreads: Int = 0) {
        self.numRanks = numRanks
        self.workerThreads = workerThreads
    }
}

/// Errors choosing or creating a backend.
public enum BackendError: Error, CustomStringConvertible, Equatable {
    case unknownDevice(String, known: [String])
    case unavailable(String, reason: String)

    public var description: String {
        switch self {
        case let .unknownDevice(name, known):
            return "unknown device '\(name)': known devices are \(known.joined(separator: ", "))"
        case let .unavailable(name, reason): return "device '\(name)' is not available: \(reason)"
        }
    }
}

/// Backends by `--device` name. The CPU backend registers itself (`WideEPCPU.CPUBackend.register()`); a GPU
/// backend registers the same way with an availability probe, and the CLI only ever goes through this table.
public enum BackendRegistry {
    /// One registered backend.
    public struct Entry {
        /// `--device` name.
        public let name: String
        /// nil when usable, else why not (e.g. "libcuda.so.1 not found").
        public let unavailableReason: () -> String?
        /// Creates the backend.
        public let make: (BackendOptions) throws -> any MoEBackend

        public init(
            name: String, unavailableReason: @escaping () -> String? = { nil },
            make: @escaping (BackendOptions) throws -> any MoEBackend
        ) {
            self.name = name
            self.unavailableReason = unavailableReason
            self.make = make
        }
    }

    nonisolated(unsafe) private static var entries: [String: Entry] = [:]
    private static let lock = NSLock()

    /// Adds or replaces a backend.
    public static func register(_ entry: Entry) {
        lock.lock()
        defer { lock.unlock() }
        entries[entry.name] = entry
    }

    /// Registered names, sorted.
    public static var names: [String] {
        lock.lock()
        defer { lock.unlock() }
        return entries.keys.sorted()
    }

    /// Creates backend `name`, or throws `BackendError` when it is unknown or unavailable.
    public static func make(_ name: String, options: BackendOptions) throws -> any MoEBackend {
        lock.lock()
        let entry = entries[name]
        let known = entries.keys.sorted()
        lock.unlock()
        guard let entry else { throw BackendError.unknownDevice(name, known: known) }
        if let why = entry.unavailableReason() { throw BackendError.unavailable(name, reason: why) }
        return try entry.make(options)
    }
}

extension MoEBackend {
    /// Float32 compute: the default for backends that do not say otherwise.
    public var referenceTolerance: Double { 1e-4 }
}
