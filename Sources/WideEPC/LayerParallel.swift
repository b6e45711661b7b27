#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WideEPCore

/// Plans layers concurrently: layers are independent, so each worker takes a contiguous block of layers and plans
/// them with its own `RawLayerPlanner`, writing its rows of the outputs. The result equals planning the layers in
/// order (every planner is deterministic per layer); on failure the error of the lowest failing layer is thrown, as a
/// sequential loop would.
///
/// Workers are plain pthreads created and joined inside the call rather than a pool that outlives it: libwideep
/// lives in host processes (vLLM, SGLang) that may fork at any time, and with no pool there is no thread state for a
/// child to inherit. A thread costs tens of microseconds to start, so each one gets at least `minLayersPerWorker`
/// layers (a layer takes several microseconds to plan).
enum LayerParallel {
    /// Fewest layers worth a thread of their own.
    static let minLayersPerWorker = 8

    /// Workers to use: `WIDEEP_NUM_THREADS` when set to a positive integer, else the online processor count, and
    /// never more than one per `minLayersPerWorker` layers (at least one).
    static func workerCount(layers: Int) -> Int {
        var n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        if let text = getenv("WIDEEP_NUM_THREADS"), let v = Int(String(cString: text)), v > 0 { n = v }
        return max(1, min(layers / minLayersPerWorker, n))
    }

    /// Plans `layers` rows of `loads [layers, E]` into `phy2log [layers, S]` and `logcnt [layers, E]` (nullable).
    /// `planner` plans on the calling thread; other workers plan with copies of its request.
    static func plan(
        loads: UnsafePointer<Double>, layers: Int, planner: RawLayerPlanner, current: [Placement]?,
        phy2log: UnsafeMutablePointer<Int64>, logcnt: UnsafeMutablePointer<Int64>?
    ) throws {
        let e = planner.numExperts, s = planner.request.numSlots
        let workers = workerCount(layers: layers)
        // The first error of each worker (its lowest failing layer), as (layer, error).
        let failures = UnsafeMutableBufferPointer<(Int, Error)?>.allocate(capacity: workers)
        failures.initialize(repeating: nil)
        defer {
            _ = failures.deinitialize()
            failures.deallocate()
        }
        let request = planner.request
        run(workers: workers) { w in
            let begin = w * layers / workers, end = (w + 1) * layers / workers
            do {
                let own = w == 0 ? planner : try RawLayerPlanner(numExperts: e, request: request)
                for l in begin..<end {
                    do {
                        try own.plan(
                            loads: UnsafeBufferPointer(start: loads + l * e, count: e), current: current?[l],
                            layer: l, phy2log: phy2log + l * s, logcnt: logcnt.map { $0 + l * e })
                    } catch {
                        failures[w] = (l, error)
                        return
                    }
                }
            } catch {
                failures[w] = (begin, error)
            }
        }
        // Blocks are in layer order, so the first failing worker holds the lowest failing layer.
        for f in failures { if let (_, error) = f { throw error } }
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
