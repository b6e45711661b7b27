import ArgumentParser
import Foundation
import WideEPCPU
import WideEPCUDA
import WideEPDistributed

extension TCPStore: RankStore {}

/// This process's part in a `wide-ep run`: the whole run (one process, all ranks as threads) or one rank of a
/// multi-process job started by `wide-ep launch`, torchrun, srun or mpirun.
///
/// In a job (WORLD_SIZE > 1) it joins the rendezvous store and replaces the "cpu" and "cuda" backends with their
/// process-per-rank versions (`ProcessRankBackend`, `CUDAEPBackend`), so `--device` picks them as usual.
struct RunJob {
    /// The joined session (no store for a single process).
    let session: DistributedSession

    /// Whether the ranks are separate processes.
    var isDistributed: Bool { session.store != nil }
    /// Whether this process prints the summary and writes files (rank 0).
    var isLeader: Bool { session.env.rank == 0 }

    /// Joins the job described by the environment; in a job, `epSize` must equal the world size.
    static func join(epSize: Int) throws -> RunJob {
        let detected = try RendezvousEnv.detect(ProcessInfo.processInfo.environment)
        // Checked before joining, so every rank refuses alike and nobody waits for a peer that has left.
        if detected.worldSize > 1 && epSize != detected.worldSize {
            throw ValidationError("--ep-size \(epSize) does not match the \(detected.worldSize) launched ranks; with one "
                                  + "process per rank, pass --ep-size \(detected.worldSize)")
        }
        let session = try DistributedSession.join(beforeExit: CommAbort.all)
        let env = session.env
        guard let store = session.store else { return RunJob(session: session) }
        ProcessRankBackend.register(store: store, rank: env.rank, size: env.worldSize, localSize: env.localWorldSize)
        CUDAEPBackend.register(
            store: store, rank: env.rank, size: env.worldSize, localRank: env.localRank, localSize: env.localWorldSize)
        return RunJob(session: session)
    }

    /// Joins the job, runs `body` and leaves cleanly; on an error, tells the other ranks first so they stop at once.
    static func run(epSize: Int, _ body: (RunJob) throws -> Void) throws {
        let job = try join(epSize: epSize)
        do {
            try body(job)
        } catch let exit as ExitCode {
            // A reported outcome (e.g. a verification failure), not a crash: leave cleanly.
            job.finish()
            throw exit
        } catch {
            job.fail(error)
            throw error
        }
        job.finish()
    }

    /// Fault injection (`--fail-rank R --fail-at-step K`): rank R kills itself with SIGKILL before step K, as a crash
    /// would, so the job's failure handling can be tested.
    func injectFault(rank: Int?, step: Int, now: Int) {
        guard let rank, rank == session.env.rank, step == now else { return }
        CLIOutput.progress("run: rank \(rank) injecting a crash (SIGKILL) before step \(now)")
        kill(getpid(), SIGKILL)
    }

    /// Tells the other ranks that this one failed with `error`, so they stop at once instead of waiting.
    func fail(_ error: Error) {
        session.store?.reportFailure("\(error)")
    }

    /// Leaves the job cleanly (rank 0 waits for every rank to check out).
    func finish() { session.finish() }
}
