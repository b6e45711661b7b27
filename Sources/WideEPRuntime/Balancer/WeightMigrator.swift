import Dispatch
import Foundation
import WideEPCore

/// Applies new placements to an engine in place, layer by layer, `layerUpdatesPerStep` layers per step, while
/// serving continues.
///
/// Schedule: `beginStep` (before step s) picks the layers to migrate — the lowest-indexed layers whose target differs
/// from the active placement, so every rank and process picks the same ones. During step s, right after rank i's
/// forward of such a layer l (`afterForward`), a copy job on rank i's migration lane rewrites rank i's own changed
/// slots of l from the host expert store; on an asynchronous device the copies wait on the device for that forward's
/// slot reads (`MoEKernels.markSlotReads` / `beginSlotWrites`). The job overlaps layers l+1… of step s and 0…l−1 of
/// step s+1. `endStep` makes the layer's new placement active for step s+1 (`Engine.commit`) on every rank without
/// waiting; rank i's next forward of l waits (`beforeForward`) only if rank i's own copies of l have not landed.
/// A forward therefore sees the old placement with the old weights or the new placement with the new weights,
/// never a mix, and slot buffers never move.
public final class WeightMigrator<B: MoEBackend>: LayerForwardHooks {
    /// The engine whose slots are rewritten.
    public let engine: Engine<B>
    /// Layers migrated per step (≥ 1).
    public var layerUpdatesPerStep: Int
    /// Target placement per layer [L] (the active one when nothing is pending).
    public private(set) var targets: [Placement]
    /// Slot rewrites scheduled so far, over all ranks of the group (the same number in every process).
    public private(set) var slotsMoved = 0
    /// Bytes written into slot buffers so far over all ranks of the group (float32 W13 + W2 per rewritten slot).
    public private(set) var bytesCopied = 0
    /// Layers migrating in the open step (between `beginStep` and `endStep`) and their new placements.
    public private(set) var migrating: [Int: Placement] = [:]
    /// Test hook: called on the migration lane after each slot write is issued, with the layer and global slot.
    public var afterSlotCopy: ((_ layer: Int, _ slot: Int) -> Void)?
    /// Test hook: called on the rank's thread when a forward finds its layer's copies unfinished, just before it
    /// blocks on them.
    public var willWaitForCopy: ((_ layer: Int, _ rankIndex: Int) -> Void)?
    /// Test hook: called on the migration lane when a copy job starts, with the layer, the local rank index and the
    /// step (0-based count of `beginStep` calls) whose forward queued it (e.g. to hold copies into the next step).
    public var beforeCopyJob: ((_ layer: Int, _ rankIndex: Int, _ step: Int) -> Void)?
    /// Steps opened so far (`beginStep` calls).
    public private(set) var stepsBegun = 0

    private let lanes: [CopyLane]
    /// Per migrating layer, per local rank: the rank's own slot changes.
    private var changes: [Int: [[SlotChange]]] = [:]
    private let stats = CopyStats()

    public init(engine: Engine<B>, layerUpdatesPerStep: Int) {
        self.engine = engine
        self.layerUpdatesPerStep = max(1, layerUpdatesPerStep)
        targets = engine.placements
        lanes = engine.backend.localRanks.map { CopyLane(label: "wide-ep.migration.rank\($0)") }
    }

    /// Layers whose target differs from the active placement.
    public var pendingLayers: [Int] {
        (0..<targets.count).filter { targets[$0] != engine.placements[$0] }
    }

    /// Replaces the targets (e.g. with a fresh plan); layers already equal to their target are left alone.
    public func setTargets(_ new: [Placement]) throws {
        guard new.count == targets.count else {
            throw PlacementError.invalidArgument("plan has \(new.count) layers, the engine \(targets.count)")
        }
        targets = new
    }

    /// Whether some copy job started in an earlier step has not landed yet (a timing observation, for reports).
    public var copiesInFlight: Bool { lanes.contains { $0.hasUnfinished } }

    /// Copy jobs run so far (one per migrating layer and local rank with changed slots).
    public var copyJobs: Int { stats.jobs }
    /// Wall seconds of the copy jobs, summed (each from its first slot write until its writes landed).
    public var copySeconds: Double { stats.seconds }
    /// The longest single copy job, seconds.
    public var maxCopySeconds: Double { stats.maxSeconds }

    /// Opens a step: picks up to `layerUpdatesPerStep` pending layers (lowest index first) to migrate in it and
    /// returns them. Their copies start after their forward in this step; `endStep` makes them active.
    @discardableResult
    public func beginStep() -> [Int] {
        precondition(migrating.isEmpty, "beginStep() called twice without endStep()")
        stepsBegun += 1
        let bytesPerSlot = (engine.store[0].w13PerExpert + engine.store[0].w2PerExpert) * 4
        let ranks = engine.backend.localRanks
        for l in pendingLayers.prefix(layerUpdatesPerStep) {
            let old = engine.placements[l], new = targets[l]
            let changed = (0..<new.numSlots).filter { old.slotExpert[$0] != new.slotExpert[$0] }
            changes[l] = ranks.map { rank in
                changed.filter { new.rank(ofSlot: $0) == rank }.map {
                    SlotChange(local: $0 % new.slotsPerRank, global: $0, expert: Int(new.slotExpert[$0]))
                }
            }
            slotsMoved += changed.count
            bytesCopied += changed.count * bytesPerSlot
            migrating[l] = new
        }
        return migrating.keys.sorted()
    }

    /// Closes the step: makes each migrating layer's new placement active from the next step on, on every rank,
    /// without waiting for its copies (the layer's next forward on each rank waits for that rank's own copies).
    /// Rethrows a copy failure.
    public func endStep() throws {
        for (l, p) in migrating.sorted(by: { $0.key < $1.key }) { engine.commit(layer: l, placement: p) }
        migrating = [:]
        changes = [:]
        if let e = stats.takeError() { throw e }
    }

    /// Blocks until every copy job has landed (end of a run, tests) and rethrows a copy failure.
    public func waitForCopies() throws {
        for lane in lanes { lane.drain() }
        if let e = stats.takeError() { throw e }
    }

    // MARK: LayerForwardHooks

    public func beforeForward(layer: Int, rankIndex: Int) throws -> Double? {
        guard let ticket = lanes[rankIndex].take(layer) else { return nil }
        var waited: Double?
        if ticket.group.wait(timeout: .now()) == .timedOut {
            willWaitForCopy?(layer, rankIndex)
            let t0 = monotonicSeconds()
            ticket.group.wait()
            waited = monotonicSeconds() - t0
        }
        if let e = ticket.error { throw e }
        try engine.layers[layer][rankIndex].kernels.orderAfterSlotWrites(ticket.copied)
        return waited
    }

    public func afterForward(layer l: Int, rankIndex i: Int) throws {
        guard let placement = migrating[l], let mine = changes[l]?[i] else { return }
        let target = engine.layers[l][i], weights = engine.store[l], k = target.kernels
        try k.preparePlacement(placement)
        guard !mine.isEmpty else { return }
        let readsDone = try k.markSlotReads(target.slots)
        let ticket = CopyTicket()
        ticket.group.enter()
        lanes[i].put(l, ticket)
        let stats = self.stats, hook = afterSlotCopy, startHook = beforeCopyJob, step = stepsBegun - 1
        lanes[i].queue.async {
            startHook?(l, i, step)
            let t0 = monotonicSeconds()
            do {
                try k.beginSlotWrites(after: readsDone)
                try weights.w13.withUnsafeBufferPointer { a in
                    try weights.w2.withUnsafeBufferPointer { b in
                        for c in mine {
                            let ra = weights.w13Range(expert: c.expert), rb = weights.w2Range(expert: c.expert)
                            try k.enqueueSlotWrite(
                                w13: UnsafeBufferPointer(rebasing: a[ra]), w2: UnsafeBufferPointer(rebasing: b[rb]),
                                into: target.slots, localSlot: c.local)
                            hook?(l, c.global)
                        }
                    }
                }
                ticket.copied = try k.finishSlotWrites()
                // Recorded only once the writes landed, so a forward never sees a slot marked before it is written.
                for c in mine { target.contents.set(c.local, Int32(c.expert)) }
            } catch {
                ticket.error = error
                stats.fail(error)
            }
            stats.add(seconds: monotonicSeconds() - t0)
            ticket.group.leave()
        }
    }
}

/// One slot rewrite on one rank.
struct SlotChange {
    /// Local slot on the rank.
    var local: Int
    /// Global slot (for hooks and messages).
    var global: Int
    /// Expert it will hold.
    var expert: Int
}
