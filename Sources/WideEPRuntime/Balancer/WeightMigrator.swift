import Dispatch
import Foundation
import WideEPCore

/// Applies new placements to an engine, `layerUpdatesPerStep` layers per step, while serving continues.
///
/// For each staged layer, a copy job on the migration thread rewrites the changed slots in place from the host
/// expert store (`MoELayer.loadSlot`); the layer's forward in that step waits only for its own job, and the layer's
/// placement becomes active (`Engine.commit`) as one unit once the step ends. A forward therefore always sees a
/// placement whose slots are fully written: old placement before the job starts, new placement after it finished.
public final class WeightMigrator<B: MoEBackend> {
    /// The engine whose slots are rewritten.
    public let engine: Engine<B>
    /// Layers migrated per step (≥ 1).
    public var layerUpdatesPerStep: Int
    /// Target placement per layer [L] (the active one when nothing is pending).
    public private(set) var targets: [Placement]
    /// Slot rewrites done so far.
    public private(set) var slotsMoved = 0
    /// Bytes written into slot buffers so far (float32 weights).
    public private(set) var bytesCopied = 0
    /// Seconds the copy jobs ran, summed.
    public var copySeconds: Double { stats.seconds }
    /// Test hook: called inside each copy job after each slot is written (e.g. to slow copies down).
    public var afterSlotCopy: ((_ layer: Int, _ slot: Int) -> Void)?

    private let queue = DispatchQueue(label: "wide-ep.migration")
    private let stats = CopyStats()
    private var inFlight: [Int: StagedLayer] = [:]

    public init(engine: Engine<B>, layerUpdatesPerStep: Int) {
        self.engine = engine
        self.layerUpdatesPerStep = max(1, layerUpdatesPerStep)
        targets = engine.placements
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

    /// Starts the copy jobs of up to `layerUpdatesPerStep` pending layers and returns them for `Engine.step`.
    public func stage() -> [Int: StagedLayer] {
        precondition(inFlight.isEmpty, "stage() called twice without finish()")
        let bytesPerSlot = engine.store[0].w13PerExpert * 4 + engine.store[0].w2PerExpert * 4
        for l in pendingLayers.prefix(layerUpdatesPerStep) {
            let old = engine.placements[l], new = targets[l]
            let changed = (0..<new.numSlots).filter { old.slotExpert[$0] != new.slotExpert[$0] }
            let group = DispatchGroup()
            group.enter()
            let engine = self.engine, stats = self.stats, hook = afterSlotCopy
            queue.async {
                let t0 = DispatchTime.now().uptimeNanoseconds
                do {
                    for s in changed {
                        let rank = new.rank(ofSlot: s)
                        guard let i = engine.backend.localRanks.firstIndex(of: rank) else { continue }
                        try engine.layers[l][i].loadSlot(
                            s % new.slotsPerRank, expert: Int(new.slotExpert[s]), from: engine.store[l])
                        hook?(l, s)
                    }
                } catch {
                    stats.fail(error)
                }
                stats.add(seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                group.leave()
            }
            slotsMoved += changed.count
            bytesCopied += changed.count * bytesPerSlot
            inFlight[l] = StagedLayer(placement: new, ready: group)
        }
        return inFlight
    }

    /// After the step: waits for any unfinished job and makes each staged layer's placement active.
    public func finish() throws {
        for (l, s) in inFlight.sorted(by: { $0.key < $1.key }) {
            s.ready.wait()
            engine.commit(layer: l, placement: s.placement)
        }
        inFlight = [:]
        if let e = stats.takeError() { throw e }
    }
}

/// Thread-safe copy-job totals.
final class CopyStats: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0.0
    private var error: Error?

    var seconds: Double {
        lock.lock()
        defer { lock.unlock() }
        return total
    }

    func add(seconds: Double) {
        lock.lock()
        total += seconds
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
