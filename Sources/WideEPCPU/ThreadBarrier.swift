import Foundation
import WideEPRuntime

/// A reusable blocking barrier for a fixed number of threads, with abort: once aborted, every current and future
/// `wait` throws, so one failing rank cannot leave the others blocked forever.
final class ThreadBarrier: @unchecked Sendable {
    private let count: Int
    private var arrived = 0
    private var generation = 0
    private var abortReason: String?
    private let cond = NSCondition()

    init(count: Int) { self.count = count }

    /// Blocks until `count` threads have called it (for this generation).
    func wait() throws {
        cond.lock()
        defer { cond.unlock() }
        if let why = abortReason { throw CommunicatorErrorBox.aborted(why) }
        let gen = generation
        arrived += 1
        if arrived == count {
            arrived = 0
            generation &+= 1
            cond.broadcast()
            return
        }
        while gen == generation && abortReason == nil { cond.wait() }
        if gen == generation, let why = abortReason { throw CommunicatorErrorBox.aborted(why) }
    }

    /// Wakes every waiter with an error; later waits throw too.
    func abort(_ why: String) {
        cond.lock()
        if abortReason == nil { abortReason = why }
        cond.broadcast()
        cond.unlock()
    }
}

/// Builds the runtime's `CommunicatorError` (kept here so the barrier file reads on its own).
enum CommunicatorErrorBox {
    static func aborted(_ why: String) -> CommunicatorError { .aborted(why) }
}
