#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import WideEPCore

/// Plans layers concurrently: layers are independent, so each worker takes a contiguous block of layers and calls
/// `Planner.planLayer`. The result equals `Planner.plan` (the planner is deterministic per layer); on failure the
/// error of the lowest failing layer is thrown, as a sequential loop would.
enum LayerParallel {
    /// Workers to use: `WIDEEP_NUM_THREADS` when set to a positive integer, else the active processor count, and
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
        DispatchQueue.concurrentPerform(iterations: workers) { w in
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
}
