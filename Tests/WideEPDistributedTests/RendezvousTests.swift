import Foundation
import Testing
@testable import WideEPDistributed

@Suite struct RendezvousEnvTests {
    @Test func torchrunVariablesWinAndAreValidated() throws {
        let env = try RendezvousEnv.detect([
            "RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1",
            "MASTER_PORT": "1234", "SLURM_PROCID": "7",
        ])
        #expect(env == RendezvousEnv(rank: 3, worldSize: 8, localRank: 1, localWorldSize: 2, masterAddr: "10.0.0.1",
                                     masterPort: 1234, source: "torchrun"))
    }

    @Test func slurmAndOpenMPIFallbacks() throws {
        let s = try RendezvousEnv.detect(["SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1",
                                          "SLURM_NTASKS_PER_NODE": "8(x2)"])
        #expect(s.rank == 5 && s.worldSize == 16 && s.localRank == 1 && s.localWorldSize == 8 && s.source == "slurm")
        let o = try RendezvousEnv.detect(["OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4",
                                          "OMPI_COMM_WORLD_LOCAL_RANK": "0", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"])
        #expect(o.rank == 2 && o.worldSize == 4 && o.localWorldSize == 2 && o.source == "openmpi")
        let single = try RendezvousEnv.detect([:])
        #expect(single.rank == 0 && single.worldSize == 1 && single.source == "single")
    }

    @Test(arguments: [
        (["RANK": "4", "WORLD_SIZE": "4"], "RANK"),
        (["RANK": "x", "WORLD_SIZE": "4"], "RANK"),
        (["RANK": "0"], "WORLD_SIZE"),
        (["RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "70000"], "MASTER_PORT"),
    ])
    func badEnvironmentNamesTheVariable(env: [String: String], variable: String) {
        #expect {
            try RendezvousEnv.detect(env)
        } throws: { error in
            "\(error)".contains(variable) && (error as? DistributedError).map {
                if case .badEnvironment = $0 { return true } else { return false }
            } == true
        }
    }
}

@Suite(.serialized) struct TCPStoreTests {
    /// Joins `world` ranks in threads of this process against one store on a free port.
    static func withRanks(_ world: Int, _ body: @escaping @Sendable (TCPStore) throws -> Void) throws {
        let port = try Launcher.freeLocalPort()
        let store0 = try TCPStore(env: RendezvousEnv(rank: 0, worldSize: world, localRank: 0, localWorldSize: world,
                                                     masterPort: port), timeout: 20)
        let errors = ErrorBox()
        let group = DispatchGroup()
        for r in 1..<world {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let s = try TCPStore(env: RendezvousEnv(rank: r, worldSize: world, localRank: r,
                                                            localWorldSize: world, masterPort: port), timeout: 20)
                    try body(s)
                    s.close()
                } catch { errors.add("\(error)") }
            }
        }
        do { try body(store0) } catch { errors.add("\(error)") }
        group.wait()
        store0.close()
        #expect(errors.all.isEmpty, "\(errors.all)")
    }

    @Test func allGatherReturnsEveryRankInOrder() throws {
        try Self.withRanks(4) { store in
            let got = try store.allGather("ids", Array("r\(store.env.rank)".utf8))
            #expect(got.map { String(decoding: $0, as: UTF8.self) } == ["r0", "r1", "r2", "r3"])
            try store.barrier("after")
            let total = try store.add("sum", Int64(store.env.rank + 1))
            #expect(total >= 1 && total <= 10)
            try store.barrier("summed")
            #expect(Int64(storeBytes: try store.get("sum")) == 10)
        }
    }

    @Test func getTimesOutWithAClearError() throws {
        let port = try Launcher.freeLocalPort()
        let s = try TCPStore(env: RendezvousEnv(rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1,
                                                masterPort: port), timeout: 0.2)
        defer { s.close() }
        #expect {
            try s.get("never-set")
        } throws: { "\($0)".contains("timed out") && "\($0)".contains("never-set") }
    }

    @Test func aRankThatVanishesAbortsTheOthers() throws {
        let port = try Launcher.freeLocalPort()
        let env0 = RendezvousEnv(rank: 0, worldSize: 2, localRank: 0, localWorldSize: 2, masterPort: port)
        let s0 = try TCPStore(env: env0, timeout: 30)
        defer { s0.close() }
        let reason = ErrorBox()
        let sem = DispatchSemaphore(value: 0)
        try s0.startMonitor { r in reason.add(r); sem.signal() }
        // Rank 1 joins, registers its monitor, then drops its sockets without saying bye: a crash.
        let s1 = try TCPStore(env: RendezvousEnv(rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2,
                                                 masterPort: port), timeout: 30)
        try s1.startMonitor { _ in }
        try s1.set("up", [1])
        _ = try s0.get("up")
        s1.simulateCrash()
        #expect(sem.wait(timeout: .now() + 10) == .success)
        #expect(reason.all.first?.contains("rank 1") == true)
        // A blocked call on rank 0 now fails fast instead of waiting out its 30 s deadline.
        #expect { try s0.get("never-set") } throws: { "\($0)".contains("rank 1") }
    }
}

@Suite(.serialized) struct LauncherTests {
    @Test func aFailingRankStopsTheOthersAndItsCodeIsReturned() throws {
        let log = ErrorBox()
        let outcome = try Launcher.run(
            options: LaunchOptions(nprocPerNode: 3, graceSeconds: 2), executable: "/bin/sh",
            arguments: ["-c", "if [ \"$RANK\" = 1 ]; then exit 3; fi; exec sleep 60"], log: { log.add($0) })
        #expect(outcome.exitCode == 3)
        #expect(outcome.failedRank == 1)
        #expect(outcome.statuses[1] == 3)
        // The survivors were stopped by a signal rather than running out their 60 s sleep.
        #expect(outcome.statuses[0] > 128 && outcome.statuses[2] > 128)
        #expect(log.all.contains { $0.contains("rank 1 exited with code 3") })
    }

    @Test func ranksSeeTorchrunEnvironment() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wideep-launch-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outcome = try Launcher.run(
            options: LaunchOptions(nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterPort: 45678),
            executable: "/bin/sh",
            arguments: ["-c", "echo $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $MASTER_PORT > \(dir.path)/$RANK"],
            log: { _ in })
        #expect(outcome.exitCode == 0)
        let r2 = try String(contentsOf: dir.appendingPathComponent("2"), encoding: .utf8)
        let r3 = try String(contentsOf: dir.appendingPathComponent("3"), encoding: .utf8)
        #expect(r2 == "2 4 0 2 45678\n")
        #expect(r3 == "3 4 1 2 45678\n")
    }

    @Test func multiNodeNeedsAnExplicitPort() {
        #expect(throws: DistributedError.self) {
            try LaunchOptions(nprocPerNode: 1, nnodes: 2).validate()
        }
    }
}

/// Thread-safe list of strings collected from worker threads.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}
