import ArgumentParser
import Foundation
import WideEPDistributed

/// `wide-ep launch`: starts one wide-ep process per local GPU and supervises them.
struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Run a wide-ep command as several ranks (one process per local GPU), torchrun style.",
        discussion: """
            Each rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT. Ranks meet \
            through a TCP store on rank 0. If any rank fails, the others are stopped and launch exits with that \
            rank's code. Example: wide-ep launch --nproc-per-node 2 -- run --device cuda
            """)

    @Option(help: "Processes (ranks) to start on this node.")
    var nprocPerNode: Int

    @Option(help: "Nodes in the job.")
    var nnodes = 1

    @Option(help: "This node's index, 0..<nnodes.")
    var nodeRank = 0

    @Option(help: "Address of node 0, where rank 0 hosts the store.")
    var masterAddr = "127.0.0.1"

    @Option(help: "Store port (default: a free port on one node; required with --nnodes > 1).")
    var masterPort: Int?

    @Option(help: "Seconds between SIGTERM and SIGKILL when stopping surviving ranks.")
    var graceSeconds = 5.0

    @Argument(parsing: .captureForPassthrough, help: "The wide-ep subcommand and its arguments, after --.")
    var command: [String] = []

    func run() throws {
        var args = command
        if args.first == "--" { args.removeFirst() }
        guard let sub = args.first, !sub.isEmpty else {
            throw ValidationError("missing the command to launch; write it after --, e.g. launch --nproc-per-node 2 -- run")
        }
        if sub == "launch" { throw ValidationError("launch cannot launch itself") }
        let options = LaunchOptions(
            nprocPerNode: nprocPerNode, nnodes: nnodes, nodeRank: nodeRank, masterAddr: masterAddr,
            masterPort: masterPort, graceSeconds: graceSeconds)
        let outcome = try Launcher.run(
            options: options, executable: Launcher.currentExecutable(), arguments: args,
            log: { CLIOutput.progress($0) })
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }
}

/// `wide-ep rendezvous-check`: every rank joins the store, exchanges its rank and passes barriers.
struct RendezvousCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rendezvous-check",
        abstract: "Check that all ranks of a job can meet (run it under launch, torchrun, srun or mpirun).")

    @Option(help: "Barrier rounds to pass.")
    var rounds = 3

    @Option(help: "Seconds to wait at each barrier before giving up.")
    var timeout = 60.0

    @Option(help: "Fault injection: this rank kills itself (SIGKILL) after --fail-after rounds.")
    var failRank: Int?

    @Option(help: "Fault injection: rounds completed before --fail-rank dies.")
    var failAfter = 1

    @Option(help: "Seconds to pause between rounds.")
    var pause = 0.05

    func run() throws {
        let session = try DistributedSession.join(timeout: timeout)
        let env = session.env
        guard let store = session.store else {
            print("rendezvous-check: single process (no launcher environment found); nothing to check")
            return
        }
        let names = try store.allGather("hello", Array("\(env.rank)@\(ProcessInfo.processInfo.hostName)".utf8))
        if env.rank == 0 {
            print("rendezvous-check: \(names.count) ranks joined: "
                + names.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ", "))
        }
        for round in 0..<rounds {
            if failRank == env.rank && round == failAfter {
                CLIOutput.progress("rendezvous-check: rank \(env.rank) injecting a crash (SIGKILL)")
                kill(getpid(), SIGKILL)
            }
            try store.barrier("round-\(round)", timeout: timeout)
            if pause > 0 { usleep(UInt32(pause * 1_000_000)) }
        }
        if env.rank == 0 { print("rendezvous-check: \(rounds) barrier rounds passed on \(env.worldSize) ranks") }
        session.finish()
    }
}
