/// The slot rewrites that turn one set of placements into another (DESIGN.md §3): `(layer, slot, newExpert, source)`.
///
/// A copy reads a slot's new weights from a peer slot that holds the expert in the old placement and keeps it in the
/// new one (same rank first, then same node), or from the host expert store. Because a source is never itself
/// rewritten, all copies of a layer can run at once and in any order; a layer is applied as a unit.
public struct MigrationPlan: Sendable, Codable, Equatable {
    /// Where a copy reads the expert's weights from.
    public enum Source: Sendable, Codable, Equatable, Hashable {
        /// Global slot (old placement) on the same rank or node that holds the expert before and after.
        case peer(slot: Int)
        /// The host-side expert store (MoELayerWeights).
        case host
    }

    /// One slot rewrite.
    public struct Copy: Sendable, Codable, Equatable, Hashable {
        /// MoE layer index.
        public var layer: Int
        /// Global slot being rewritten.
        public var slot: Int
        /// Expert the slot holds afterwards.
        public var newExpert: Int
        /// Where the weights come from.
        public var source: Source

        /// A copy of `newExpert`'s weights into `slot` of `layer`, read from `source`.
        public init(layer: Int, slot: Int, newExpert: Int, source: Source) {
            self.layer = layer
            self.slot = slot
            self.newExpert = newExpert
            self.source = source
        }
    }

    /// Every copy, grouped by layer (ascending), then by slot, [moves].
    public let copies: [Copy]
    /// Bytes written per rewritten slot (e.g. `MoEConfig.expertBytes()`).
    public let bytesPerSlot: Int
    /// Layers in the plan (L).
    public let numLayers: Int

    /// Slot rewrites in total.
    public var moves: Int { copies.count }
    /// Bytes copied in total.
    public var bytes: Int { copies.count * bytesPerSlot }
    /// Copies of each layer, [L][…]; empty where a layer does not change.
    public var byLayer: [[Copy]] {
        var out = [[Copy]](repeating: [], count: numLayers)
        for c in copies { out[c.layer].append(c) }
        return out
    }
    /// Copies that read from a peer slot.
    public var peerCopies: Int { copies.filter { $0.source != .host }.count }

    /// The copies from `old` to `new`.
    ///
    /// - Parameters:
    ///   - old: placements in use, [L].
    ///   - new: target placements, [L], each with the same experts, ranks and slots as in `old`.
    ///   - topology: ranks and nodes, to prefer peers on the same rank, then the same node.
    ///   - bytesPerSlot: bytes of one expert's weights.
    /// - Throws: `PlacementError.invalidArgument` when shapes disagree.
    public static func between(old: [Placement], new: [Placement], topology: Topology, bytesPerSlot: Int) throws
        -> MigrationPlan
    {
        guard old.count == new.count else {
            throw PlacementError.invalidArgument(
                "migration needs one new placement per layer: old has \(old.count), new has \(new.count)")
        }
        guard bytesPerSlot >= 0 else {
            throw PlacementError.invalidArgument("bytes per slot must be >= 0, got \(bytesPerSlot)")
        }
        var copies: [Copy] = []
        for l in 0..<old.count {
            let a = old[l], b = new[l]
            guard a.numExperts == b.numExperts && a.numSlots == b.numSlots && a.numRanks == b.numRanks else {
                throw PlacementError.invalidArgument(
                    "layer \(l): old placement (\(a.numExperts) experts, \(a.numSlots) slots, \(a.numRanks) ranks) and "
                        + "new (\(b.numExperts), \(b.numSlots), \(b.numRanks)) differ in shape")
            }
            guard a.numRanks == topology.numRanks else {
                throw PlacementError.invalidArgument(
                    "layer \(l): placement has \(a.numRanks) ranks but the topology has \(topology.numRanks)")
            }
            for s in 0..<a.numSlots where a.slotExpert[s] != b.slotExpert[s] {
                let e = Int(b.slotExpert[s])
                copies.append(Copy(layer: l, slot: s, newExpert: e, source: source(
                    expert: e, slot: s, old: a, new: b, topology: topology)))
            }
        }
        return MigrationPlan(copies: copies, bytesPerSlot: bytesPerSlot, numLayers: old.count)
    }

    /// The best stable source for writing `expert` into `slot`: a slot holding it before and after, on the same
    /// rank, else on the same node, else the host store.
    static func source(expert: Int, slot: Int, old: Placement, new: Placement, topology: Topology) -> Source {
        let rank = old.rank(ofSlot: slot)
        var sameNode: Int? = nil
        for s32 in old.replicas(of: expert) {
            let s = Int(s32)
            guard new.slotExpert[s] == Int32(expert) else { continue }
            let r = old.rank(ofSlot: s)
            if r == rank { return .peer(slot: s) }
            if sameNode == nil && topology.node(ofRank: r) == topology.node(ofRank: rank) { sameNode = s }
        }
        return sameNode.map { .peer(slot: $0) } ?? .host
    }
}
