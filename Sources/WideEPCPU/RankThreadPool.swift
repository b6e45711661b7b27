import Foundation

/// R persistent threads, one per rank, that run a body concurrently and join. Ranks block on each other in
/// collectives, so they need real threads (a GCD `concurrentPerform` may run them one after another).
final class RankThreadPool: @unchecked Sendable {
    private final class Shared: @unchecked Sendable {
        var body: ((Int) throws -> Void)?
        var errors: [Error?]
        var shutdown = false
        let start: [DispatchSemaphore]
        let done = DispatchSemaphore(value: 0)
        init(n: Int) {
            errors = Array(repeating: nil, count: n)
            start = (0..<n).map { _ in DispatchSemaphore(value: 0) }
        }
    }

    let count: Int
    private let shared: Shared
    private let lock = NSLock()

    init(count: Int) {
        self.count = count
        shared = Shared(n: count)
        for r in 0..<count {
            let s = shared
            let t = Thread {
                while true {
                    s.start[r].wait()
                    if s.shutdown { return }
                    do { try s.body?(r) } catch { s.errors[r] = error }
                    s.done.signal()
                }
            }
            t.stackSize = 4 << 20
            t.name = "wide-ep rank \(r)"
            t.start()
        }
    }

    deinit {
        shared.shutdown = true
        for s in shared.start { s.signal() }
    }

    /// Runs `body(rank)` on every rank thread, waits for all, and throws the first error (lowest rank).
    /// `onError` is called as soon as a rank fails (used to abort collectives so the others do not hang).
    func run(_ body: @escaping (Int) throws -> Void, onError: @escaping (Error) -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        shared.errors = Array(repeating: nil, count: count)
        shared.body = { r in
            do { try body(r) } catch {
                onError(error)
                throw error
            }
        }
        for s in shared.start { s.signal() }
        for _ in 0..<count { shared.done.wait() }
        shared.body = nil
        // Report the root cause, not the "aborted" echoes of the other ranks.
        let errs = shared.errors.compactMap { $0 }
        if let root = errs.first(where: { !"\($0)".hasPrefix("communicator aborted") }) ?? errs.first { throw root }
    }
}
