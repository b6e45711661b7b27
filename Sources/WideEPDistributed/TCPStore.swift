import Foundation

/// A rank's handle on the job's rendezvous store (hosted by rank 0), used to exchange NCCL ids, IPC handles and
/// counts, to barrier, and to notice that a peer died.
///
/// Every blocking call has a deadline and returns `DistributedError.peerLost` as soon as any rank fails, so a job
/// never hangs on a dead rank.
public final class TCPStore: @unchecked Sendable {
    /// This process's place in the job.
    public let env: RendezvousEnv
    /// Default deadline of blocking calls, seconds.
    public let timeout: Double
    /// The server, on rank 0 only.
    public let server: StoreServer?
    let conn: FrameSocket
    let lock = NSLockLite()
    var monitor: FrameSocket?
    var closed = false
    /// Set when this rank starts leaving; the monitor then ignores the store going away.
    var leaving = false

    /// Joins the job: rank 0 starts the server on `env.masterPort`, every rank connects with bounded retries.
    ///
    /// - Parameters:
    ///   - timeout: deadline of each blocking call, seconds.
    ///   - connectAttempts: connection attempts, 0.25 s apart, before giving up with a clear error.
    public init(env: RendezvousEnv, timeout: Double = 300, connectAttempts: Int = 240) throws {
        self.env = env
        self.timeout = timeout
        if env.rank == 0 {
            server = try StoreServer(port: env.masterPort)
        } else {
            server = nil
        }
        let host = env.rank == 0 ? "127.0.0.1" : env.masterAddr
        let port = server?.port ?? env.masterPort
        conn = try FrameSocket.connect(host: host, port: port, attempts: connectAttempts, retryDelay: 0.25)
    }

    /// Port the store listens on (resolved when rank 0 asked for port 0).
    public var port: Int { server?.port ?? env.masterPort }

    private func call(_ w: FrameWriter) throws -> FrameReader {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { throw DistributedError.protocolError("the store connection is closed") }
        try conn.send(w.bytes)
        guard let reply = try conn.receive() else {
            throw DistributedError.peerLost(rank: 0, detail: "the store on rank 0 closed the connection")
        }
        return FrameReader(reply)
    }

    private func check(_ r: inout FrameReader, _ what: String, _ seconds: Double) throws {
        switch StoreStatus(rawValue: try r.u8()) {
        case .ok: return
        case .timeout: throw DistributedError.timeout(operation: what, seconds: seconds)
        case .abort: throw DistributedError.peerLost(rank: nil, detail: try r.string())
        case nil: throw DistributedError.protocolError("unknown reply status")
        }
    }

    /// Stores `value` under `key`.
    public func set(_ key: String, _ value: [UInt8]) throws {
        var w = FrameWriter(StoreOp.set.rawValue)
        w.string(key)
        w.blob(value)
        var r = try call(w)
        try check(&r, "set \(key)", timeout)
    }

    /// Reads `key`, waiting until some rank sets it.
    public func get(_ key: String, timeout: Double? = nil) throws -> [UInt8] {
        let t = timeout ?? self.timeout
        var w = FrameWriter(StoreOp.get.rawValue)
        w.string(key)
        w.i64(Int64(t * 1000))
        var r = try call(w)
        try check(&r, "waiting for key '\(key)'", t)
        return try r.blob()
    }

    /// Adds `delta` to the counter at `key` and returns the new value.
    @discardableResult
    public func add(_ key: String, _ delta: Int64) throws -> Int64 {
        var w = FrameWriter(StoreOp.add.rawValue)
        w.string(key)
        w.i64(delta)
        var r = try call(w)
        try check(&r, "add \(key)", timeout)
        return try r.i64()
    }

    /// Waits until the counter at `key` reaches `target`.
    public func wait(counter key: String, atLeast target: Int64, timeout: Double? = nil) throws {
        let t = timeout ?? self.timeout
        var w = FrameWriter(StoreOp.waitAtLeast.rawValue)
        w.string(key)
        w.i64(target)
        w.i64(Int64(t * 1000))
        var r = try call(w)
        try check(&r, "waiting for \(target) ranks at '\(key)'", t)
    }

    /// Blocks until every rank reached the barrier `name`. Each name may be used once.
    public func barrier(_ name: String, timeout: Double? = nil) throws {
        try add("barrier/\(name)", 1)
        try wait(counter: "barrier/\(name)", atLeast: Int64(env.worldSize), timeout: timeout)
    }

    /// Every rank contributes `value`; returns all contributions in rank order.
    public func allGather(_ name: String, _ value: [UInt8], timeout: Double? = nil) throws -> [[UInt8]] {
        try set("gather/\(name)/\(env.rank)", value)
        return try (0..<env.worldSize).map { try get("gather/\(name)/\($0)", timeout: timeout) }
    }

    /// Reports this rank's failure to the job, so the other ranks stop at once with `message`.
    public func reportFailure(_ message: String) {
        var w = FrameWriter(StoreOp.fail.rawValue)
        w.string("rank \(env.rank): \(message)")
        _ = try? call(w)
    }

    /// Opens the monitor connection: when any rank dies or reports failure, or rank 0's store vanishes,
    /// `onFailure` runs once on a background thread with the reason.
    public func startMonitor(onFailure: @escaping @Sendable (String) -> Void) throws {
        let host = env.rank == 0 ? "127.0.0.1" : env.masterAddr
        let m = try FrameSocket.connect(host: host, port: port, attempts: 20, retryDelay: 0.25)
        var w = FrameWriter(StoreOp.watch.rawValue)
        w.i64(Int64(env.rank))
        try m.send(w.bytes)
        lock.lock()
        monitor = m
        lock.unlock()
        let t = Thread { [weak self] in
            let frame = try? m.receive()
            guard let self else { return }
            self.lock.lock()
            let leaving = self.leaving
            self.lock.unlock()
            if leaving { return }
            if let frame, var r = Optional(FrameReader(frame)), (try? r.u8()) == StoreStatus.abort.rawValue {
                onFailure((try? r.string()) ?? "a rank failed")
            } else {
                onFailure("lost the rendezvous store on rank 0 (rank 0 exited or crashed)")
            }
        }
        t.name = "wideep-store-monitor"
        t.start()
    }

    /// Leaves the job cleanly: says bye on the monitor (so peers don't treat this exit as a crash) and closes.
    /// Rank 0 keeps serving until every other rank has left, bounded by `timeout`.
    public func close() {
        lock.lock()
        if closed || leaving { lock.unlock(); return }
        leaving = true
        lock.unlock()
        if env.worldSize > 1 {
            // Everyone checks out before rank 0 takes the store down.
            _ = try? add("finished", 1)
            if env.rank == 0 { _ = try? wait(counter: "finished", atLeast: Int64(env.worldSize), timeout: 30) }
        }
        lock.lock()
        closed = true
        let m = monitor
        lock.unlock()
        if let m {
            try? m.send(FrameWriter(StoreOp.bye.rawValue).bytes)
            m.close()
        }
        conn.close()
        server?.stop()
    }
}

extension TCPStore {
    /// Drops every socket without saying bye, exactly as a killed process would (for fault-injection tests).
    func simulateCrash() {
        lock.lock()
        leaving = true
        closed = true
        let m = monitor
        lock.unlock()
        m?.close()
        conn.close()
    }
}
