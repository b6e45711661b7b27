#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WideEPCore

/// Plans layers concurrently: layers are independent, so each worker takes a contiguous block of layers and calls
/// `Planner.planLayer`. The result equals `Planner.plan` (the planner is deterministic per layer); on failure the
/// error of the lowest failing layer is thrown, as a sequential loop would.
///
/// Workers are plain pthreads created and joined inside the call rather than a pool that outlives it: libwideep
/// lives in host processes (vLLM, SGLang) that may fork at any time, and with no pool there is no thread state for a
/// child to inherit. Starting a thread costs tens of microseconds against milliseconds of planning.
enum LayerParallel {
    /// Workers to use: `WIDEEP_NUM_THREADS` when set to a positive integer, else the online processor count, and
    /// never more than `layers`.
    static func workerCount(layers: Int) -> Int {
        var n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        if let text = getenv("WIDEEP_NUM_THREADS"), let v = Int(String(cString: text)), v > 0 { n = v }
        return max(1, min(layers, n))
    }

    static func plan(loads: [[Double]], request: PlannerRequest, current: [Placement]?) throws -> [Placement] {
        let layers = loads.count
        let workers = workerCount(layers: layers)
        if workers == 1 { return try Planner.plan(loads: loads, request: request, current: current) }
        let results = UnsafeMutableBufferPointer<Result<Placement, Error>?>.allocate(capacity: layers)
        results.initialize(repeating: nil)
        defer {
            _ = results.deinitialize()
            results.deallocate()
        }
        run(workers: workers) { w in
            let begin = w * layers / workers, end = (w + 1) * layers / workers
            for l in begin..<end {
                // Each worker writes only its own layers' entries.
                results[l] = Result {
                    try Planner.planLayer(loads: loads[l], request: request, current: current?[l], layer: l)
                }
            }
        }
        return try results.map { try $0!.get() }
    }

    /// Runs `body(0..<workers)`, `body(0)` on the calling thread and the others on fresh threads; returns after all.
    /// A worker whose thread cannot be started runs on the calling thread instead.
    static func run(workers: Int, _ body: @escaping (Int) -> Void) {
        var threads: [pthread_t] = []
        var inline: [Int] = []
        for w in 1..<workers {
            let job = Unmanaged.passRetained(Job { body(w) }).toOpaque()
            if let thread = start(job) {
                threads.append(thread)
            } else {
                Unmanaged<Job>.fromOpaque(job).release()
                inline.append(w)
            }
        }
        body(0)
        for w in inline { body(w) }
        for thread in threads { pthread_join(thread, nil) }
    }

    private final class Job {
        let work: () -> Void
        init(_ work: @escaping () -> Void) { self.work = work }
    }

    private static func start(_ job: UnsafeMutableRawPointer) -> pthread_t? {
        #if os(Linux)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().work()
            return nil
        }, job)
        return rc == 0 ? thread : nil
        #else
        var thread: pthread_t?
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Job>.fromOpaque(raw).takeRetainedValue().work()
            return nil
        }, job)
        return rc == 0 ? thread : nil
        #endif
    }
}
