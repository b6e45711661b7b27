import Foundation

/// The rendezvous store that rank 0 hosts: a key-value map with blocking reads, counters, and failure broadcast.
///
/// One thread per connection (jobs have at most a few hundred ranks). A rank that registered a monitor connection
/// and drops it without saying bye marks the job failed; every blocked request and every monitor then gets an abort
/// with the reason, so no rank hangs on a dead peer.
public final class StoreServer: @unchecked Sendable {
    private let listener: ListenSocket
    private let cond = NSCondition()
    private var values: [String: [UInt8]] = [:]
    private var failure: String?
    private var monitors: [Int: FrameSocket] = [:]
    private var connections: [FrameSocket] = []
    private var stopped = false

    /// The port actually bound (useful with port 0 in tests).
    public var port: Int { listener.port }

    /// Starts listening on `port` (0 picks a free port) and serving in background threads.
    public init(port: Int) throws {
        listener = try ListenSocket(port: port)
        let t = Thread { [weak self] in self?.acceptLoop() }
        t.name = "wideep-store-accept"
        t.start()
    }

    /// The failure reason once any rank failed, else nil.
    public var failureReason: String? {
        cond.lock()
        defer { cond.unlock() }
        return failure
    }

    /// Stops accepting and closes every connection.
    public func stop() {
        cond.lock()
        stopped = true
        let conns = connections
        connections = []
        cond.broadcast()
        cond.unlock()
        listener.close()
        for c in conns { c.close() }
    }

    private func acceptLoop() {
        while let conn = listener.accept() {
            cond.lock()
            if stopped {
                cond.unlock()
                conn.close()
                return
            }
            connections.append(conn)
            cond.unlock()
            let t = Thread { [weak self] in self?.serve(conn) }
            t.name = "wideep-store-conn"
            t.start()
        }
    }

    /// Marks the job failed and wakes everyone; the first reason wins.
    func markFailed(_ reason: String) {
        cond.lock()
        if failure == nil {
            failure = reason
            var w = FrameWriter(StoreStatus.abort.rawValue)
            w.string(reason)
            for (_, m) in monitors { try? m.send(w.bytes) }
        }
        cond.broadcast()
        cond.unlock()
    }

    private func serve(_ conn: FrameSocket) {
        var watchedRank: Int?
        var saidBye = false
        defer {
            if let r = watchedRank {
                cond.lock()
                monitors[r] = nil
                let stopping = stopped
                cond.unlock()
                if !saidBye && !stopping { markFailed("rank \(r) disconnected without finishing (it crashed or was killed)") }
            }
            conn.close()
        }
        while true {
            guard let frame = try? conn.receive() else { return }
            var r = FrameReader(frame)
            guard let rawOp = try? r.u8(), let op = StoreOp(rawValue: rawOp) else { return }
            do {
                switch op {
                case .set:
                    let key = try r.string(), value = try r.blob()
                    cond.lock()
                    values[key] = value
                    cond.broadcast()
                    cond.unlock()
                    try conn.send([StoreStatus.ok.rawValue])
                case .get:
                    let key = try r.string(), timeoutMs = try r.i64()
                    try reply(conn, waitFor: timeoutMs) { self.values[key] }
                case .add:
                    let key = try r.string(), delta = try r.i64()
                    cond.lock()
                    let v = Int64(storeBytes: values[key] ?? []) + delta
                    values[key] = v.storeBytes
                    cond.broadcast()
                    cond.unlock()
                    var w = FrameWriter(StoreStatus.ok.rawValue)
                    w.i64(v)
                    try conn.send(w.bytes)
                case .waitAtLeast:
                    let key = try r.string(), target = try r.i64(), timeoutMs = try r.i64()
                    try reply(conn, waitFor: timeoutMs) {
                        Int64(storeBytes: self.values[key] ?? []) >= target ? [] : nil
                    }
                case .watch:
                    let rank = Int(try r.i64())
                    cond.lock()
                    monitors[rank] = conn
                    watchedRank = rank
                    let already = failure
                    cond.unlock()
                    if let already {
                        var w = FrameWriter(StoreStatus.abort.rawValue)
                        w.string(already)
                        try conn.send(w.bytes)
                    }
                case .bye:
                    saidBye = true
                    return
                case .fail:
                    let msg = try r.string()
                    markFailed(msg)
                    try conn.send([StoreStatus.ok.rawValue])
                }
            } catch {
                return
            }
        }
    }

    /// Waits until `ready` returns a value (called under the lock), the job fails, or the timeout passes.
    private func reply(_ conn: FrameSocket, waitFor timeoutMs: Int64, _ ready: () -> [UInt8]?) throws {
        let deadline = Date(timeIntervalSinceNow: Double(timeoutMs) / 1000)
        cond.lock()
        var result: [UInt8]?
        var status = StoreStatus.ok
        var reason = ""
        while true {
            if let f = failure { status = .abort; reason = f; break }
            if let v = ready() { result = v; break }
            if stopped { status = .abort; reason = "the store on rank 0 is shutting down"; break }
            if !cond.wait(until: deadline) {
                if let v = ready() { result = v } else { status = .timeout }
                break
            }
        }
        cond.unlock()
        var w = FrameWriter(status.rawValue)
        switch status {
        case .ok: w.blob(result ?? [])
        case .abort: w.string(reason)
        case .timeout: break
        }
        try conn.send(w.bytes)
    }
}
