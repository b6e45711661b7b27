import Foundation

/// Why a process could not find its place in the job, or lost contact with it.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
    case badEnvironment(variable: String, value: String, expected: String)
    case connectFailed(host: String, port: Int, attempts: Int, reason: String)
    case timeout(operation: String, seconds: Double)
    case peerLost(rank: Int?, detail: String)
    case protocolError(String)
    case system(call: String, errno: Int32)

    public var description: String {
        switch self {
        case let .badEnvironment(v, value, expected):
            return "environment variable \(v)=\(value) is invalid: expected \(expected)"
        case let .connectFailed(host, port, attempts, reason):
            return "cannot reach the rendezvous store at \(host):\(port) after \(attempts) attempts (\(reason)); "
                + "is rank 0 running and MASTER_ADDR/MASTER_PORT the same on every rank?"
        case let .timeout(op, s):
            return "\(op) timed out after \(s) s; a rank may be missing or stuck"
        case let .peerLost(rank, detail):
            return (rank.map { "rank \($0) " } ?? "a rank ") + "left the job: \(detail)"
        case let .protocolError(m):
            return "rendezvous protocol error: \(m)"
        case let .system(call, e):
            return "\(call) failed with errno \(e)"
        }
    }
}

/// This process's place in a multi-process job, read from the launcher's environment.
///
/// Sources, in order: torchrun style (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
/// `MASTER_PORT`), then SLURM (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NTASKS_PER_NODE`), then OpenMPI
/// (`OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_LOCAL_RANK`, `OMPI_COMM_WORLD_LOCAL_SIZE`). With
/// none of them, the process is rank 0 of 1.
public struct RendezvousEnv: Equatable, Sendable {
    /// Global rank, 0..<worldSize.
    public var rank: Int
    /// Number of processes in the job.
    public var worldSize: Int
    /// Rank within this node (selects the GPU).
    public var localRank: Int
    /// Processes on this node.
    public var localWorldSize: Int
    /// Host of rank 0's store.
    public var masterAddr: String
    /// Port of rank 0's store.
    public var masterPort: Int
    /// Which launcher the values came from: "torchrun", "slurm", "openmpi" or "single".
    public var source: String

    /// Default store port when none is given (torchrun's default).
    public static let defaultPort = 29500

    public init(
        rank: Int, worldSize: Int, localRank: Int, localWorldSize: Int, masterAddr: String = "127.0.0.1",
        masterPort: Int = RendezvousEnv.defaultPort, source: String = "explicit"
    ) {
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank
        self.localWorldSize = localWorldSize
        self.masterAddr = masterAddr
        self.masterPort = masterPort
        self.source = source
    }

    /// Reads the environment `env` (defaults to the process environment) and validates it.
    public static func detect(_ env: [String: String]) throws -> RendezvousEnv {
        func int(_ key: String, min: Int = 0) throws -> Int? {
            guard let raw = env[key] else { return nil }
            guard let v = Int(raw.trimmingCharacters(in: .whitespaces)), v >= min else {
                throw DistributedError.badEnvironment(variable: key, value: raw, expected: "an integer >= \(min)")
            }
            return v
        }
        let addr = env["MASTER_ADDR"] ?? "127.0.0.1"
        let port = try int("MASTER_PORT", min: 1) ?? defaultPort
        guard port <= 65535 else {
            throw DistributedError.badEnvironment(variable: "MASTER_PORT", value: "\(port)", expected: "1...65535")
        }
        var result: RendezvousEnv
        if let rank = try int("RANK") {
            guard let world = try int("WORLD_SIZE", min: 1) else {
                throw DistributedError.badEnvironment(variable: "WORLD_SIZE", value: "(unset)",
                                                      expected: "set whenever RANK is set")
            }
            let local = try int("LOCAL_RANK") ?? rank
            let localWorld = try int("LOCAL_WORLD_SIZE", min: 1) ?? world
            result = RendezvousEnv(rank: rank, worldSize: world, localRank: local, localWorldSize: localWorld,
                                   masterAddr: addr, masterPort: port, source: "torchrun")
        } else if let rank = try int("SLURM_PROCID") {
            let world = try int("SLURM_NTASKS", min: 1) ?? 1
            let local = try int("SLURM_LOCALID") ?? 0
            let perNode = try env["SLURM_NTASKS_PER_NODE"].map { raw -> Int in
                // SLURM writes e.g. "8" or "8(x2)"; the leading number is the per-node count.
                guard let v = Int(raw.prefix { $0.isNumber }), v >= 1 else {
                    throw DistributedError.badEnvironment(variable: "SLURM_NTASKS_PER_NODE", value: raw,
                                                          expected: "a count such as 8 or 8(x2)")
                }
                return v
            } ?? world
            result = RendezvousEnv(rank: rank, worldSize: world, localRank: local, localWorldSize: perNode,
                                   masterAddr: addr, masterPort: port, source: "slurm")
        } else if let rank = try int("OMPI_COMM_WORLD_RANK") {
            let world = try int("OMPI_COMM_WORLD_SIZE", min: 1) ?? 1
            let local = try int("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0
            let localWorld = try int("OMPI_COMM_WORLD_LOCAL_SIZE", min: 1) ?? world
            result = RendezvousEnv(rank: rank, worldSize: world, localRank: local, localWorldSize: localWorld,
                                   masterAddr: addr, masterPort: port, source: "openmpi")
        } else {
            result = RendezvousEnv(rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: addr,
                                   masterPort: port, source: "single")
        }
        try result.validate()
        return result
    }

    /// Checks the relations between the fields.
    public func validate() throws {
        guard rank < worldSize else {
            throw DistributedError.badEnvironment(variable: "RANK", value: "\(rank)",
                                                  expected: "less than WORLD_SIZE (\(worldSize))")
        }
        guard localRank < localWorldSize, localWorldSize <= worldSize else {
            throw DistributedError.badEnvironment(
                variable: "LOCAL_RANK", value: "\(localRank)",
                expected: "less than LOCAL_WORLD_SIZE (\(localWorldSize)), which is at most WORLD_SIZE (\(worldSize))")
        }
    }

    /// The environment variables that place a child process at `rank` (torchrun style).
    public func childEnvironment() -> [String: String] {
        [
            "RANK": "\(rank)", "WORLD_SIZE": "\(worldSize)", "LOCAL_RANK": "\(localRank)",
            "LOCAL_WORLD_SIZE": "\(localWorldSize)", "MASTER_ADDR": masterAddr, "MASTER_PORT": "\(masterPort)",
        ]
    }
}
