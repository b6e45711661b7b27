import Foundation

/// A joined multi-process job: this rank's environment plus the store, with failure supervision installed.
///
/// Commands call `join()` once at start. With a world size of 1 no store is created.
public final class DistributedSession: @unchecked Sendable {
    /// This rank's place in the job.
    public let env: RendezvousEnv
    /// The rendezvous store, when the world has more than one rank.
    public let store: TCPStore?

    private init(env: RendezvousEnv, store: TCPStore?) {
        self.env = env
        self.store = store
    }

    /// Reads the environment, joins the store and installs a monitor that ends this process with exit code 1 and
    /// one clear stderr line when any other rank fails. `beforeExit` runs first (e.g. `ncclCommAbort`).
    public static func join(
        environment: [String: String] = ProcessInfo.processInfo.environment, timeout: Double = 300,
        beforeExit: (@Sendable () -> Void)? = nil
    ) throws -> DistributedSession {
        let env = try RendezvousEnv.detect(environment)
        guard env.worldSize > 1 else { return DistributedSession(env: env, store: nil) }
        let store = try TCPStore(env: env, timeout: timeout)
        let rank = env.rank
        try store.startMonitor { reason in
            beforeExit?()
            FileHandle.standardError.write(Data("wide-ep: error: rank \(rank) stopping: \(reason)\n".utf8))
            exit(1)
        }
        return DistributedSession(env: env, store: store)
    }

    /// Leaves the job cleanly.
    public func finish() { store?.close() }
}
