import Foundation

/// How `wide-ep launch` places its local ranks.
public struct LaunchOptions: Sendable, Equatable {
    /// Processes to start on this node (one per GPU).
    public var nprocPerNode: Int
    /// Nodes in the job.
    public var nnodes: Int
    /// This node's index, 0..<nnodes.
    public var nodeRank: Int
    /// Host of the global rank 0 (node 0).
    public var masterAddr: String
    /// Store port; nil picks a free local port (single node only).
    public var masterPort: Int?
    /// Seconds between SIGTERM and SIGKILL when stopping the surviving ranks.
    public var graceSeconds: Double

    public init(
        nprocPerNode: Int, nnodes: Int = 1, nodeRank: Int = 0, masterAddr: String = "127.0.0.1",
        masterPort: Int? = nil, graceSeconds: Double = 5
    ) {
        self.nprocPerNode = nprocPerNode
        self.nnodes = nnodes
        self.nodeRank = nodeRank
        self.masterAddr = masterAddr
        self.masterPort = masterPort
        self.graceSeconds = graceSeconds
    }

    /// Checks counts and ranges, with the flag names of `wide-ep launch` in the messages.
    public func validate() throws {
        guard nprocPerNode >= 1 else {
            throw DistributedError.badEnvironment(variable: "--nproc-per-node", value: "\(nprocPerNode)", expected: ">= 1")
        }
        guard nnodes >= 1 else {
            throw DistributedError.badEnvironment(variable: "--nnodes", value: "\(nnodes)", expected: ">= 1")
        }
        guard nodeRank >= 0 && nodeRank < nnodes else {
            throw DistributedError.badEnvironment(variable: "--node-rank", value: "\(nodeRank)",
                                                  expected: "0..<\(nnodes)")
        }
        if nnodes > 1 && masterPort == nil {
            throw DistributedError.badEnvironment(variable: "--master-port", value: "(unset)",
                                                  expected: "a port shared by every node when --nnodes > 1")
        }
    }
}

/// Starts one child process per local rank and supervises them: if any rank fails, the rest are stopped, so the
/// job ends within seconds instead of hanging.
public enum Launcher {
    /// Result of a supervised job.
    public struct Outcome: Sendable, Equatable {
        /// The launcher's exit code: 0 when all ranks succeeded, else the first failing rank's code.
        public var exitCode: Int32
        /// The first rank that failed, if any.
        public var failedRank: Int?
        /// Exit status of every local rank, in local-rank order.
        public var statuses: [Int32]
    }

    /// Runs `executable arguments` as `nprocPerNode` local ranks and waits for them.
    ///
    /// - Parameter log: receives one line per event (start, failure, stop).
    public static func run(
        options: LaunchOptions, executable: String, arguments: [String],
        baseEnvironment: [String: String] = ProcessInfo.processInfo.environment,
        log: @escaping @Sendable (String) -> Void
    ) throws -> Outcome {
        try options.validate()
        let port = try options.masterPort ?? freeLocalPort()
        let world = options.nprocPerNode * options.nnodes
        let state = SupervisorState(ranks: options.nprocPerNode)
        let lock = state.cond
        var processes: [Process] = []
        defaultTerminationSignals()
        // A launcher told to stop (SIGTERM from a scheduler or `timeout`, SIGHUP, SIGINT) stops its ranks instead of
        // leaving them running as orphans. Caught from before the first rank starts, so no stop signal is lost or
        // kills the launcher alone; exec resets caught signals to the default, so the ranks still die on SIGTERM.
        try StopSignals.register(state)
        defer { StopSignals.unregister(state) }

        for local in 0..<options.nprocPerNode {
            let rank = options.nodeRank * options.nprocPerNode + local
            let env = RendezvousEnv(
                rank: rank, worldSize: world, localRank: local, localWorldSize: options.nprocPerNode,
                masterAddr: options.masterAddr, masterPort: port, source: "launch")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
            var childEnv = baseEnvironment
            for (k, v) in env.childEnvironment() { childEnv[k] = v }
            // Ranks are told apart in interleaved output.
            childEnv["WIDEEP_LOG_PREFIX"] = "[rank \(rank)] "
            p.environment = childEnv
            p.terminationHandler = { proc in
                lock.lock()
                let code = exitCode(of: proc)
                state.statuses[local] = code
                if code != 0 && state.firstFailure == nil { state.firstFailure = (rank, code) }
                lock.broadcast()
                lock.unlock()
            }
            do {
                try p.run()
            } catch {
                lock.lock()
                state.firstFailure = state.firstFailure ?? (rank, 127)
                state.statuses[local] = 127
                lock.unlock()
                log("wide-ep launch: cannot start rank \(rank): \(error.localizedDescription)")
                break
            }
            processes.append(p)
        }
        log("wide-ep launch: started \(processes.count) rank(s) of \(world), store \(options.masterAddr):\(port)")

        // Wait until every rank ended, or one failed, or the launcher was told to stop.
        lock.lock()
        while state.firstFailure == nil && state.stopSignal == nil
            && state.statuses.prefix(processes.count).contains(where: { $0 == nil })
        {
            lock.wait()
        }
        if state.firstFailure != nil {
            // Termination handlers race: a rank that exited because a crashed peer disconnected can be seen before
            // the crashed one. Let the other handlers land (0.5 s at most, before anything is stopped), then name a
            // rank killed by a signal, the likelier cause, ahead of ranks that exited with an error.
            let settle = Date(timeIntervalSinceNow: 0.5)
            while state.statuses.prefix(processes.count).contains(where: { $0 == nil }) && lock.wait(until: settle) {}
            if let local = state.statuses.firstIndex(where: { ($0 ?? 0) > 128 }), let code = state.statuses[local] {
                state.firstFailure = (options.nodeRank * options.nprocPerNode + local, code)
            }
        }
        let stopSignal = state.firstFailure == nil ? state.stopSignal : nil
        let failure = state.firstFailure ?? stopSignal.map { (rank: -1, code: 128 + $0) }
        lock.unlock()

        if let failure {
            if let sig = stopSignal {
                log("wide-ep launch: received signal \(sig); stopping the ranks")
            } else {
                let how = failure.code > 128
                    ? "was killed by signal \(failure.code - 128)" : "exited with code \(failure.code)"
                log("wide-ep launch: rank \(failure.rank) \(how); stopping the other ranks")
            }
            for p in processes where p.isRunning { p.terminate() }
            let deadline = Date(timeIntervalSinceNow: options.graceSeconds)
            while Date() < deadline && processes.contains(where: { $0.isRunning }) { usleep(20_000) }
            for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        for p in processes { p.waitUntilExit() }
        // Read the final statuses from the processes themselves: termination handlers may still be in flight.
        var final = [Int32](repeating: 127, count: options.nprocPerNode)
        for (i, p) in processes.enumerated() {
            final[i] = exitCode(of: p)
        }
        return Outcome(exitCode: failure?.code ?? 0, failedRank: stopSignal == nil ? failure?.rank : nil, statuses: final)
    }

    /// Signals that stop the whole job when the launcher receives them. SIGHUP only when it is not ignored (under
    /// `nohup` the job keeps running).
    static let stopSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// Ranks must die on the SIGTERM that stopping them sends even when the launcher itself was started with SIGTERM
    /// or SIGINT ignored or blocked (dispositions and the signal mask are inherited through exec), so those two go
    /// back to the default and are unblocked on the spawning thread first.
    private static func defaultTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_DFL)
            sigaddset(&set, sig)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static func isIgnore(_ handler: __sighandler_t?) -> Bool {
        unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// A shell-style exit code: the status, or 128 + the signal for a process killed by a signal.
    static func exitCode(of p: Process) -> Int32 {
        p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    }

    /// A TCP port that is free on this host right now.
    public static func freeLocalPort() throws -> Int {
        let l = try ListenSocket(port: 0)
        defer { l.close() }
        return l.port
    }

    /// Absolute path of the running executable (for re-launching it as ranks).
    public static func currentExecutable() -> String {
        #if os(Linux)
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        #endif
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }
}

/// Exit statuses of the local ranks, guarded by `cond`.
/// The write end of the stop-signal pipe, read by the signal handler (a C function cannot capture it). Set once,
/// before any handler is installed.
nonisolated(unsafe) private var stopSignalPipe: Int32 = -1

/// Writes the signal number to the stop-signal pipe: `write` is async-signal-safe, and errno is kept.
private func forwardStopSignal(_ sig: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: sig)
    _ = write(stopSignalPipe, &byte, 1)
    errno = saved
}

/// Routes `Launcher.stopSignals` to `stopSignal` of every supervisor running in the process (waking each) instead
/// of killing the launcher: a handler writes each signal to a pipe and a thread reads it (the self-pipe pattern), so
/// a signal is caught from the moment `register` returns. The handlers stay while any supervisor is registered; the
/// last `unregister` puts the previous dispositions back. SIGHUP is left alone when it is ignored (under `nohup` the
/// job keeps running). The pipe and its reader thread live as long as the process.
private enum StopSignals {
    nonisolated(unsafe) private static var active: [ObjectIdentifier: SupervisorState] = [:]
    nonisolated(unsafe) private static var previous: [(Int32, sigaction)] = []
    nonisolated(unsafe) private static var pipeReady = false
    private static let lock = NSLock()

    static func register(_ state: SupervisorState) throws {
        lock.lock()
        defer { lock.unlock() }
        if !pipeReady {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw DistributedError.system(call: "pipe (stop signals)", errno: errno) }
            // Ranks do not inherit either end.
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            stopSignalPipe = fds[1]
            let readEnd = fds[0]
            let reader = Thread {
                var byte: UInt8 = 0
                while true {
                    let n = read(readEnd, &byte, 1)
                    if n < 0 && errno == EINTR { continue }
                    guard n == 1 else { return }
                    lock.lock()
                    let states = Array(active.values)
                    lock.unlock()
                    for state in states {
                        state.cond.lock()
                        if state.stopSignal == nil { state.stopSignal = Int32(byte) }
                        state.cond.broadcast()
                        state.cond.unlock()
                    }
                }
            }
            reader.name = "wide-ep launch signals"
            reader.start()
            pipeReady = true
        }
        if active.isEmpty {
            for sig in Launcher.stopSignals {
                var old = sigaction()
                sigaction(sig, nil, &old)
                if sig == SIGHUP && Launcher.isIgnore(old.__sigaction_handler.sa_handler) { continue }
                var act = sigaction()
                act.__sigaction_handler.sa_handler = forwardStopSignal
                sigemptyset(&act.sa_mask)
                act.sa_flags = SA_RESTART
                sigaction(sig, &act, nil)
                previous.append((sig, old))
            }
        }
        active[ObjectIdentifier(state)] = state
    }

    static func unregister(_ state: SupervisorState) {
        lock.lock()
        defer { lock.unlock() }
        guard active.removeValue(forKey: ObjectIdentifier(state)) != nil, active.isEmpty else { return }
        for (sig, old) in previous {
            var o = old
            sigaction(sig, &o, nil)
        }
        previous = []
    }
}

private final class SupervisorState: @unchecked Sendable {
    let cond = NSCondition()
    var statuses: [Int32?]
    var firstFailure: (rank: Int, code: Int32)?
    /// A stop signal the launcher received (see `Launcher.stopSignals`).
    var stopSignal: Int32?
    init(ranks: Int) { statuses = [Int32?](repeating: nil, count: ranks) }
}
