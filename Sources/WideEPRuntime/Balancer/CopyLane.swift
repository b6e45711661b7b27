import Dispatch
import Foundation

/// One layer's copy job on one rank: left when its slot writes have landed (or failed).
final class CopyTicket: @unchecked Sendable {
    /// Entered when the job is queued, left when it is done.
    let group = DispatchGroup()
    /// The backend's "copied" marker (`MoEKernels.finishSlotWrites`), set before `group` is left.
    var copied: AnyObject?
    /// The job's failure, set before `group` is left.
    var error: Error?

    /// Whether the job is done (never blocks).
    var isDone: Bool { group.wait(timeout: .now()) == .success }
}

/// One local rank's migration lane: a serial queue (the rank's copies run one after another, in the order their
/// layers' forwards finished) and the tickets of its copies not yet consumed by a forward, by layer.
final class CopyLane: @unchecked Sendable {
    /// Where the rank's copy jobs run.
    let queue: DispatchQueue
    private let lock = NSLock()
    private var tickets: [Int: CopyTicket] = [:]

    init(label: String) { queue = DispatchQueue(label: label) }

    /// Records `ticket` as layer `layer`'s copy in flight (the layer's previous one was consumed by its forward).
    func put(_ layer: Int, _ ticket: CopyTicket) {
        lock.lock()
        tickets[layer] = ticket
        lock.unlock()
    }

    /// Removes and returns layer `layer`'s ticket, if one is there.
    func take(_ layer: Int) -> CopyTicket? {
        lock.lock()
        defer { lock.unlock() }
        return tickets.removeValue(forKey: layer)
    }

    /// Whether a ticket's job is still running.
    var hasUnfinished: Bool {
        lock.lock()
        let all = Array(tickets.values)
        lock.unlock()
        return all.contains { !$0.isDone }
    }

    /// Waits for every job queued so far; the tickets stay for the forwards (already done, they never wait).
    func drain() { queue.sync {} }
}

/// Thread-safe copy-job totals.
final class CopyStats: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0.0
    private var longest = 0.0
    private var count = 0
    private var error: Error?

    /// Seconds of all jobs.
    var seconds: Double {
        lock.lock()
        defer { lock.unlock() }
        return total
    }

    /// The longest job, seconds.
    var maxSeconds: Double {
        lock.lock()
        defer { lock.unlock() }
        return longest
    }

    /// Jobs finished.
    var jobs: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }

    func add(seconds: Double) {
        lock.lock()
        total += seconds
        longest = max(longest, seconds)
        count += 1
        lock.unlock()
    }

    func fail(_ e: Error) {
        lock.lock()
        if error == nil { error = e }
        lock.unlock()
    }

    func takeError() -> Error? {
        lock.lock()
        defer { lock.unlock() }
        let e = error
        error = nil
        return e
    }
}
