#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WideEPCore

/// Plans layers concurrently on the calling thread and the `PlanningPool`'s threads: layers are independent, so
/// each thread claims the next unplanned layer, plans it with its own `RawLayerPlanner` and writes its output rows.
/// The result equals planning the layers in order (every planner is deterministic per layer); on failure the error
/// of the lowest failing layer is thrown, as a sequential loop would.
///
/// With a `log2phy` allocator the call has a second phase: once every layer is planned, the caller learns the
/// widest replica count X, gets a `[layers, E, X]` buffer from the allocator and the same threads fill its rows.
enum LayerParallel {
    /// Fewest layers per thread: below two, a thread's wake-up costs more than the layer it would plan.
    static let minLayersPerWorker = 2

    /// Least work, in layers × (experts + slots), worth waking other threads for (about 20 µs of planning).
    static let minParallelWork = 1024

    /// Threads to use, the caller included: `WIDEEP_NUM_THREADS` when set to a positive integer, else the processors
    /// this process may run on; at most one per `minLayersPerWorker` layers, and 1 for calls under
    /// `minParallelWork`.
    static func workerCount(layers: Int, experts: Int, slots: Int, processors: Int) -> Int {
        var n = processors
        if let text = getenv("WIDEEP_NUM_THREADS"), let v = Int(String(cString: text)), v > 0 { n = v }
        if layers &* (experts &+ slots) < minParallelWork { return 1 }
        return max(1, min(layers / minLayersPerWorker, n))
    }

    /// Processors in this process's affinity mask (taskset, cgroup cpusets), else the online count.
    static func availableProcessors() -> Int {
        #if os(Linux)
        if let getAffinity = schedGetAffinity {
            // A 1024-processor mask, as glibc's cpu_set_t.
            var mask = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                        UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            let count = withUnsafeMutableBytes(of: &mask) { bytes -> Int in
                guard getAffinity(0, bytes.count, bytes.baseAddress) == 0 else { return 0 }
                return bytes.reduce(0) { $0 + $1.nonzeroBitCount }
            }
            if count > 0 { return count }
        }
        #endif
        return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    #if os(Linux)
    /// glibc's `sched_getaffinity(pid, size, mask)`, resolved once (Swift's Glibc module does not declare it).
    private static let schedGetAffinity: (@convention(c) (pid_t, Int, UnsafeMutableRawPointer?) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_getaffinity") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (pid_t, Int, UnsafeMutableRawPointer?) -> Int32).self)
    }()
    #endif

    /// Plans `layers` rows of `loads [layers, E]` into `phy2log [layers, S]` and `logcnt [layers, E]` (nullable).
    /// With `allocateLog2Phy` (which needs `logcnt`), then calls it once with X = the largest replica count and fills
    /// the `[layers, E, X]` buffer it returns (ascending slots, -1 padding).
    static func plan(
        loads: UnsafePointer<Double>, layers: Int, numExperts: Int, request: PlannerRequest, current: [Placement]?,
        phy2log: UnsafeMutablePointer<Int64>, logcnt: UnsafeMutablePointer<Int64>?,
        allocateLog2Phy: ((Int) throws -> UnsafeMutablePointer<Int64>)? = nil
    ) throws {
        precondition(allocateLog2Phy == nil || logcnt != nil, "LayerParallel: log2phy needs logcnt")
        let job = LayerJob(
            layers: layers, numExperts: numExperts, request: request, loads: loads, current: current,
            phy2log: phy2log, logcnt: logcnt, wantsWidths: allocateLog2Phy != nil)
        let processors = availableProcessors()
        let workers = workerCount(layers: layers, experts: numExperts, slots: request.numSlots, processors: processors)
        let pool = PlanningPool.shared
        pool.lock()
        guard !pool.busy else {
            // Another call owns the pool: plan on this thread alone, with a workspace of its own.
            pool.unlock()
            var planner = WorkerPlanner()
            try job.runAlone(planner: &planner, allocateLog2Phy: allocateLog2Phy)
            return
        }
        pool.busy = true
        var planner = pool.callerPlanner
        let helpers = workers > 1 ? pool.ensureThreads(workers - 1) : 0
        job.workers = helpers + 1
        job.mayPoll = job.workers <= processors
        if helpers > 0 {
            pool.current = job
            pthread_cond_broadcast(pool.workCond)
        }
        // Leaves the pool with the lock held on entry; releases it.
        func release() {
            pool.current = nil
            pool.callerPlanner = planner
            pool.busy = false
            pool.unlock()
        }
        job.drain(pool: pool, planner: &planner)
        pool.wait(poll: job.mayPoll) { job.planFinished }
        if let failure = job.failure {
            release()
            throw failure.error
        }
        guard let allocateLog2Phy else { return release() }
        pool.unlock()
        let width = job.widestLayer()
        let out: UnsafeMutablePointer<Int64>
        do {
            out = try allocateLog2Phy(width)
        } catch {
            pool.lock()
            release()
            throw error
        }
        pool.lock()
        job.openFill(log2phy: out, width: width)
        if helpers > 0 { pthread_cond_broadcast(pool.workCond) }
        job.drain(pool: pool, planner: &planner)
        pool.wait(poll: job.mayPoll) { job.fillFinished }
        release()
    }
}
