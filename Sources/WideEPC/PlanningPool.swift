#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WideEPCore

/// The process-wide planning threads: started lazily by the first parallel call, reused by later calls, and made
/// fork-safe with `pthread_atfork`.
///
/// Why a pool: a call plans 58 layers in about 100 µs of CPU on 16 cores, while starting and joining a thread per
/// worker costs tens of microseconds each on the calling thread; a pool wakes every worker with one broadcast.
/// Why it is fork-safe: libwideep lives in hosts (vLLM, SGLang) that fork. `prepare` takes the pool lock (no job
/// changes hands during `fork`), and in the child the pool forgets the parent's threads, which do not exist there,
/// and re-creates its lock and conditions; the child's first parallel call starts fresh threads. A job in flight in
/// the parent stays the parent's: only the forking thread is copied, and it never runs a job while forking.
///
/// Jobs are `LayerJob`s: one at a time (a second caller meanwhile plans on its own thread). Workers claim layers one
/// by one under the lock, so a worker whose core wakes late simply takes fewer layers, and the caller waits for the
/// layers in flight, never for a worker that has not woken yet.
final class PlanningPool {
    /// The pool.
    static let shared = PlanningPool()

    /// Stack of each pool thread: the planners keep their workspaces on the heap; temporary buffers on the stack are
    /// a few KiB (Swift moves larger ones to the heap when the stack is short).
    static let stackBytes = 2 << 20

    /// Guards the fields below and every counter of the current `LayerJob`.
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Signalled when a job is posted or opens its fill phase.
    let workCond: UnsafeMutablePointer<pthread_cond_t>
    /// Signalled when the last task of a phase completes (the caller waits on it).
    let doneCond: UnsafeMutablePointer<pthread_cond_t>

    // Guarded by `mutex`.
    /// Threads started (index 1...threads; 0 is the caller).
    var threads = 0
    /// The job being run, if any.
    var current: LayerJob?
    /// A caller owns the pool (and `callerPlanner`).
    var busy = false
    /// The workspace of whichever thread owns the pool; reused while the request matches.
    var callerPlanner: WorkerPlanner = WorkerPlanner()

    private init() {
        mutex = .allocate(capacity: 1)
        workCond = .allocate(capacity: 1)
        doneCond = .allocate(capacity: 1)
        Self.initializeSync(mutex, workCond, doneCond)
        pthread_atfork(
            { PlanningPool.shared.lock() },
            { PlanningPool.shared.unlock() },
            { PlanningPool.shared.resetInChild() })
    }

    private static func initializeSync(
        _ mutex: UnsafeMutablePointer<pthread_mutex_t>, _ work: UnsafeMutablePointer<pthread_cond_t>,
        _ done: UnsafeMutablePointer<pthread_cond_t>
    ) {
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if canImport(Glibc)
        // Spin briefly before sleeping: threads woken together by a broadcast then hand the lock on without a
        // futex wake-up each (the lock is held for a claim, tens of nanoseconds).
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        pthread_cond_init(work, nil)
        pthread_cond_init(done, nil)
    }

    /// Takes `mutex`.
    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    /// Releases `mutex`.
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }

    /// The child of a fork has none of the parent's pool threads: forget them (their workspaces leak, once) and
    /// re-create the synchronization objects, whose waiter state belonged to the parent's threads.
    private func resetInChild() {
        threads = 0
        current = nil
        busy = false
        callerPlanner = WorkerPlanner()
        Self.initializeSync(mutex, workCond, doneCond)
    }

    /// Starts threads until `count` exist (fewer if the system refuses); returns how many exist. Call with the lock.
    ///
    /// The threads start with every signal blocked (they inherit the mask in force here), so the host's signal
    /// handlers (Python's, for one) keep running on the host's own threads.
    func ensureThreads(_ count: Int) -> Int {
        guard threads < count else { return threads }
        var all = sigset_t(), saved = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        while threads < count {
            let index = threads + 1
            guard Self.startThread(index: index) else { break }
            threads = index
        }
        return threads
    }

    private static func startThread(index: Int) -> Bool {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackBytes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let argument = UnsafeMutableRawPointer(bitPattern: index)
        #if os(Linux)
        var thread = pthread_t()
        return pthread_create(&thread, &attributes, { raw in
            PlanningPool.shared.workerLoop(index: Int(bitPattern: raw))
            return nil
        }, argument) == 0
        #else
        var thread: pthread_t?
        return pthread_create(&thread, &attributes, { raw in
            PlanningPool.shared.workerLoop(index: Int(bitPattern: raw))
            return nil
        }, argument) == 0
        #endif
    }

    /// A pool thread: runs the tasks it can claim of each job that wants it, sleeps otherwise. Never returns.
    ///
    /// A thread that runs out of plan tasks of a job that will open a fill phase polls for it for a short while
    /// (`fillSpinNanoseconds`) instead of sleeping at once: the phase opens a few microseconds later, and a sleeping
    /// thread would need another wake-up to help with it.
    private func workerLoop(index: Int) {
        var planner = WorkerPlanner()
        lock()
        while true {
            if let job = current, index < job.workers {
                if let task = job.claim() {
                    unlock()
                    let failure = job.run(task, planner: &planner)
                    lock()
                    job.complete(task, failure: failure, pool: self)
                    continue
                }
                if job.mayPoll && job.awaitingFill {
                    spin(nanoseconds: Self.fillSpinNanoseconds, every: Self.helperPollNanoseconds) { [unowned self] in
                        current !== job || !job.awaitingFill || job.hasClaimableTask
                    }
                    if current !== job || job.hasClaimableTask { continue }
                }
            }
            pthread_cond_wait(workCond, mutex)
        }
    }

    /// How long a pool thread polls for a job's fill phase before it sleeps.
    static let fillSpinNanoseconds = 50_000

    /// How long a caller polls for the layers in flight on other threads before it sleeps.
    static let callerSpinNanoseconds = 200_000

    /// Time between two polls of the lock: the pool's threads poll less often than the caller, so that a dozen of
    /// them keep the lock free most of the time for the threads finishing work.
    static let helperPollNanoseconds = 4_000
    static let callerPollNanoseconds = 1_000

    /// Polls `done` (with the lock held) every `every` nanoseconds until it is true or `nanoseconds` have passed;
    /// between polls the lock is released, the thread yields once and waits on the clock. Returns with the lock held.
    /// Polling spares the futex wake-up a sleeping thread needs, which on a virtual machine costs tens of
    /// microseconds.
    func spin(nanoseconds: Int, every: Int, until done: () -> Bool) {
        let start = Self.monotonicNanoseconds()
        while !done() {
            var now = Self.monotonicNanoseconds()
            if now &- start > nanoseconds { return }
            unlock()
            sched_yield()
            let next = now &+ every
            while now < next { now = Self.monotonicNanoseconds() }
            lock()
        }
    }

    /// Waits, with the lock held, until `done` is true: polls for up to `callerSpinNanoseconds` when `poll`, then
    /// sleeps on `doneCond` (which every phase's last task signals).
    func wait(poll: Bool, until done: () -> Bool) {
        if poll { spin(nanoseconds: Self.callerSpinNanoseconds, every: Self.callerPollNanoseconds, until: done) }
        while !done() { pthread_cond_wait(doneCond, mutex) }
    }

    static func monotonicNanoseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec &* 1_000_000_000 &+ now.tv_nsec
    }
}

/// One thread's planner workspace, kept across calls while the request is the same.
struct WorkerPlanner {
    private var planner: RawLayerPlanner?

    /// A planner for `numExperts` experts and `request`, reusing the last one when it matches.
    mutating func planner(numExperts: Int, request: PlannerRequest) throws -> RawLayerPlanner {
        if let planner, planner.numExperts == numExperts, planner.request == request { return planner }
        let made = try RawLayerPlanner(numExperts: numExperts, request: request)
        planner = made
        return made
    }
}
