import Dispatch
import Foundation
import WideEPCore

/// How placements are chosen during a run.
public enum BalancerMode: String, CaseIterable, Codable, Sendable {
    /// Keep the initial placement.
    case off
    /// Plan once from the first window of statistics (or use `--placement`) and keep it.
    case `static`
    /// Re-plan in the background every `rebalanceInterval` steps or when the imbalance exceeds the threshold.
    case online
}

/// Balancer settings.
public struct BalancerOptions: Sendable, Equatable {
    /// Mode.
    public var mode: BalancerMode
    /// Steps between re-plans (online), and the statistics window; static plans after this many steps.
    public var rebalanceInterval: Int
    /// Re-plan early when the last step's mean realized imbalance ratio exceeds this (online); ∞ disables.
    public var imbalanceThreshold: Double
    /// Layers migrated per step.
    public var layerUpdatesPerStep: Int
    /// Slots, topology and policy to plan with.
    public var request: PlannerRequest
    /// Steps between starting a plan (after step s) and adopting it (after step s + adoptionLag), ≥ 1. Fixed, so the
    /// run is deterministic and every rank of a multi-process job adopts the plan at the same step; if the plan is
    /// not ready by then the step loop waits for it (planning takes milliseconds).
    public var adoptionLag: Int

    public init(
        mode: BalancerMode = .online, rebalanceInterval: Int = 10, imbalanceThreshold: Double = .infinity,
        layerUpdatesPerStep: Int = 1, request: PlannerRequest, adoptionLag: Int = 1
    ) {
        self.adoptionLag = max(1, adoptionLag)
        self.mode = mode
        self.rebalanceInterval = rebalanceInterval
        self.imbalanceThreshold = imbalanceThreshold
        self.layerUpdatesPerStep = layerUpdatesPerStep
        self.request = request
    }
}

/// Online EPLB: collects statistics every step and plans new placements on a background thread.
///
/// `observe` never blocks on planning: it records the step, and when a re-plan is due and none is running it hands a
/// snapshot (window loads and the current target placements, for migration-aware planning) to the planning queue.
/// `takePlan` returns a finished plan once, or nil.
public final class OnlineBalancer: @unchecked Sendable {
    /// Settings.
    public let options: BalancerOptions
    /// Per-layer, per-expert statistics (window = rebalanceInterval steps, decay 0.9).
    public private(set) var statistics: LoadStatistics
    /// Plans started.
    public private(set) var plansStarted = 0
    /// The function that plans: (window loads [L][E], current placements [L]) → placements [L]. Defaults to the
    /// migration-aware `Planner.plan`; tests may substitute one that blocks.
    public var planner: @Sendable ([[Double]], [Placement]) throws -> [Placement]

    private let queue = DispatchQueue(label: "wide-ep.planner")
    private let lock = NSLock()
    private var running = false
    private var ready: Result<[Placement], Error>?
    /// Step after which the plan not yet taken was started; no new plan starts while one is pending.
    public private(set) var pendingSince: Int?
    private var lastPlanStep = 0
    private var staticDone: Bool

    /// - Parameter staticPlacementGiven: with `static`, a placement file was given, so no plan is made.
    public init(options: BalancerOptions, numLayers: Int, numExperts: Int, staticPlacementGiven: Bool = false) {
        self.options = options
        statistics = LoadStatistics(
            numLayers: numLayers, numExperts: numExperts, windowSize: max(1, options.rebalanceInterval), decay: 0.9)
        staticDone = staticPlacementGiven
        let request = options.request
        planner = { loads, current in try Planner.plan(loads: loads, request: request, current: current) }
    }

    /// Whether a plan is being computed now.
    public var isPlanning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    /// Records step `step`'s counts ([L][E]) and realized imbalance; starts a background plan when one is due.
    public func observe(step: Int, counts: [[Double]], imbalance: Double, current: [Placement]) {
        statistics.record(step: counts.joined())
        let steps = step + 1
        var due = false
        switch options.mode {
        case .off: due = false
        case .static:
            due = !staticDone && steps >= options.rebalanceInterval
            if due { staticDone = true }
        case .online:
            let since = steps - lastPlanStep
            due = since >= options.rebalanceInterval
                || (imbalance > options.imbalanceThreshold && since >= max(1, options.rebalanceInterval / 4))
        }
        // A plan started but not yet taken blocks the next one: whether it is still running depends on timing,
        // whether it is pending does not, so every rank (and every rerun) decides the same.
        guard due, pendingSince == nil else { return }
        lock.lock()
        if running {
            lock.unlock()
            return
        }
        running = true
        lock.unlock()
        pendingSince = step
        lastPlanStep = steps
        plansStarted += 1
        let loads = statistics.windowLoads, plan = planner
        queue.async { [self] in
            let result = Result { try plan(loads, current) }
            lock.lock()
            ready = result
            running = false
            lock.unlock()
        }
    }

    /// A finished plan, once; nil while planning or when none was requested. Rethrows a planning failure.
    public func takePlan() throws -> [Placement]? {
        lock.lock()
        defer { lock.unlock() }
        guard let r = ready else { return nil }
        ready = nil
        pendingSince = nil
        return try r.get()
    }

    /// The pending plan if it was started at least `options.adoptionLag` steps before `step` (waiting for it to
    /// finish if needed), else nil. Depends only on the steps observed, never on how long planning took.
    public func adoptPlan(step: Int) throws -> [Placement]? {
        guard let s = pendingSince, step >= s + options.adoptionLag else { return nil }
        waitForIdle()
        return try takePlan()
    }

    /// Blocks until no plan is running (end of a run, tests).
    public func waitForIdle() {
        queue.sync {}
    }
}
