#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WideEPCore

/// One planning call's layers as tasks for the `PlanningPool`: plan tasks (one per layer), then, when the caller
/// wants `log2phy`, fill tasks (one per layer) once the caller has opened the fill phase.
///
/// Every counter is guarded by the pool's lock: a thread claims a task under the lock, runs it without the lock
/// (tasks write disjoint rows), and completes it under the lock. Claims go in layer order, so when layer f fails
/// every layer below f has been claimed and will complete; stopping new claims then still reports the lowest
/// failing layer.
final class LayerJob {
    /// A unit of work: plan a layer, or fill a layer's `log2phy` rows.
    enum Task {
        case plan(Int)
        case fill(Int)
    }

    /// Layers to plan (L).
    let layers: Int
    /// Logical experts per layer (E).
    let numExperts: Int
    /// What every layer is planned for.
    let request: PlannerRequest
    /// Expert loads, [L, E], already checked.
    let loads: UnsafePointer<Double>
    /// The placement in use per layer (migration-aware re-planning), or nil.
    let current: [Placement]?
    /// Output: the expert of each slot, [L, S].
    let phy2log: UnsafeMutablePointer<Int64>
    /// Output: replicas per expert, [L, E], or nil.
    let logcnt: UnsafeMutablePointer<Int64>?
    /// Largest replica count of each layer, [layers], when the fill phase is wanted.
    private let widths: UnsafeMutablePointer<Int64>?

    /// Threads that may take tasks, the caller included.
    var workers = 1
    /// Whether threads may poll instead of sleeping while they wait (only when every worker can have a processor of
    /// its own; polling threads would otherwise take processors from the ones doing the work).
    var mayPoll = false
    private var nextPlan = 0
    private var plansDone = 0
    private var stopped = false
    /// The lowest failing layer and its error.
    private(set) var failure: (layer: Int, error: Error)?
    private var log2phy: UnsafeMutablePointer<Int64>?
    private var width = 0
    private var nextFill = 0
    private var fillsDone = 0

    init(
        layers: Int, numExperts: Int, request: PlannerRequest, loads: UnsafePointer<Double>, current: [Placement]?,
        phy2log: UnsafeMutablePointer<Int64>, logcnt: UnsafeMutablePointer<Int64>?, wantsWidths: Bool
    ) {
        self.layers = layers
        self.numExperts = numExperts
        self.request = request
        self.loads = loads
        self.current = current
        self.phy2log = phy2log
        self.logcnt = logcnt
        widths = wantsWidths ? .allocate(capacity: layers) : nil
    }

    deinit { widths?.deallocate() }

    /// Every claimed plan task has completed and none is left to claim.
    var planFinished: Bool { plansDone == nextPlan && (nextPlan == layers || stopped) }

    /// Every fill task has completed.
    var fillFinished: Bool { fillsDone == layers }

    /// The job wants a fill phase that has not opened yet (and planning has not failed).
    var awaitingFill: Bool { widths != nil && log2phy == nil && failure == nil }

    /// A task can be claimed now.
    var hasClaimableTask: Bool {
        (nextPlan < layers && !stopped) || (log2phy != nil && nextFill < layers)
    }

    /// The next task, or nil when none can be claimed now.
    func claim() -> Task? {
        if nextPlan < layers && !stopped {
            nextPlan &+= 1
            return .plan(nextPlan &- 1)
        }
        if log2phy != nil && nextFill < layers {
            nextFill &+= 1
            return .fill(nextFill &- 1)
        }
        return nil
    }

    /// Runs a claimed task with this thread's workspace; returns its failure, if any.
    func run(_ task: Task, planner: inout WorkerPlanner) -> (layer: Int, error: Error)? {
        switch task {
        case .plan(let l):
            do {
                let own = try planner.planner(numExperts: numExperts, request: request)
                let counts = logcnt.map { $0 + l &* numExperts }
                try own.plan(
                    loads: UnsafeBufferPointer(start: loads + l &* numExperts, count: numExperts),
                    current: current?[l], layer: l, phy2log: phy2log + l &* request.numSlots, logcnt: counts)
                if let widths, let counts {
                    var widest: Int64 = 0
                    for e in 0..<numExperts { widest = max(widest, counts[e]) }
                    widths[l] = widest
                }
            } catch {
                return (l, error)
            }
        case .fill(let l):
            let s = request.numSlots
            PlanOutput.writeLog2Phy(
                phy2log: phy2log + l &* s, layers: 1, experts: numExperts, slots: s, maxReplicas: width,
                log2phy: log2phy! + l &* numExperts &* width)
        }
        return nil
    }

    /// Records a task's completion; wakes the caller when its phase is over. With `pool` nil the job runs alone.
    func complete(_ task: Task, failure taskFailure: (layer: Int, error: Error)?, pool: PlanningPool?) {
        switch task {
        case .plan:
            plansDone &+= 1
            if let taskFailure {
                if failure == nil || taskFailure.layer < failure!.layer { failure = taskFailure }
                stopped = true
            }
            if let pool, planFinished { pthread_cond_signal(pool.doneCond) }
        case .fill:
            fillsDone &+= 1
            if let pool, fillFinished { pthread_cond_signal(pool.doneCond) }
        }
    }

    /// Runs tasks on the calling thread until none can be claimed; called and returns with the pool's lock held.
    func drain(pool: PlanningPool, planner: inout WorkerPlanner) {
        while let task = claim() {
            pool.unlock()
            let taskFailure = run(task, planner: &planner)
            pool.lock()
            complete(task, failure: taskFailure, pool: pool)
        }
    }

    /// The largest replica count over all layers (after the plan phase).
    func widestLayer() -> Int {
        var widest: Int64 = 1
        for l in 0..<layers { widest = max(widest, widths![l]) }
        return Int(widest)
    }

    /// Opens the fill phase into `log2phy [layers, E, width]`.
    func openFill(log2phy: UnsafeMutablePointer<Int64>, width: Int) {
        self.width = width
        self.log2phy = log2phy
    }

    /// Runs every task on the calling thread, without the pool (another call owns it).
    func runAlone(
        planner: inout WorkerPlanner, allocateLog2Phy: ((Int) throws -> UnsafeMutablePointer<Int64>)?
    ) throws {
        while let task = claim() { complete(task, failure: run(task, planner: &planner), pool: nil) }
        if let failure { throw failure.error }
        guard let allocateLog2Phy else { return }
        let width = widestLayer()
        openFill(log2phy: try allocateLog2Phy(width), width: width)
        while let task = claim() { complete(task, failure: run(task, planner: &planner), pool: nil) }
    }
}
