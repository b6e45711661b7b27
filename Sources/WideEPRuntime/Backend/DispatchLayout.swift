import WideEPCore

/// How one batch's (token, k) pairs are split over replicas: the host-side result of `ReplicaSplit` plus this rank's
/// slot-mapping tables (`SlotMap`), identical on every rank except for the per-rank tables.
///
/// The default (`init(placement:quotas:allCounts:rank:)`) is the local-first mapping: a rank's pairs go to a
/// replica on the rank itself up to that replica's quota, the rest fill the remaining quotas in (source rank,
/// token, k) order. Every replica still receives exactly its quota, so rank loads are those of the quotas.
public struct SlotSplit: Sendable, Equatable {
    /// The layer's placement.
    public let placement: Placement
    /// Tokens each global slot computes, [numSlots] (`ReplicaSplit.quotas`); each expert's quotas sum to its count.
    public let quotas: [Int32]
    /// This rank's slot-mapping tables.
    public let map: SlotMap

    /// A split with explicit mapping tables.
    public init(placement: Placement, quotas: [Int32], map: SlotMap) {
        self.placement = placement
        self.quotas = quotas
        self.map = map
    }

    /// The local-first split of `rank` from the all-gathered per-rank counts [R × E] (`SlotMap.localFirst`).
    public init(placement: Placement, quotas: [Int32], allCounts: [Int32], rank: Int) {
        self.init(
            placement: placement, quotas: quotas,
            map: SlotMap.localFirst(counts: allCounts, quotas: quotas, placement: placement, rank: rank))
    }

    /// The prefix-order split (`SlotMap.prefixOrder`): this rank's occurrences of e start at `rankOffsets[e]`, [E].
    public init(placement: Placement, quotas: [Int32], rankOffsets: [Int32]) {
        self.init(
            placement: placement, quotas: quotas,
            map: SlotMap.prefixOrder(rankOffsets: rankOffsets, quotas: quotas, placement: placement))
    }

    /// Tokens each rank computes under this split (sum of its slots' quotas), [R].
    public var rankLoads: [Double] {
        var loads = [Double](repeating: 0, count: placement.numRanks)
        for s in 0..<quotas.count { loads[s / placement.slotsPerRank] += Double(quotas[s]) }
        return loads
    }
}

/// The send side of one dispatch: which tokens go to which rank, with their (slot, weight) metadata.
///
/// A token goes **once** per destination rank. Send rows are grouped by destination rank (ascending), tokens ascending
/// inside a group. All buffers are allocated by the caller with room for `tokens × min(K, R)` rows and reused.
public final class DispatchLayout<Buffer: DeviceBuffer> {
    /// Row capacity (send rows), ≥ tokens × min(K, R).
    public let capacity: Int
    /// Source token of each send row, int32 [capacity].
    public let sendToken: Buffer
    /// Metadata of each send row, [capacity][K] pairs of (int32 local slot on the destination or −1, float32 weight
    /// stored as its bit pattern in an int32), 8·K bytes per row; sent with the row by the all-to-all.
    public let sendMeta: Buffer
    /// CSR over tokens of their send rows: int32 [tokenCapacity + 1] starts followed by int32 [capacity] row ids
    /// (the ids begin at element `tokenCapacity + 1`); rows of a token are in ascending destination-rank order.
    public let tokenRows: Buffer
    /// Token capacity of `tokenRows`.
    public let tokenCapacity: Int

    public init(capacity: Int, sendToken: Buffer, sendMeta: Buffer, tokenRows: Buffer, tokenCapacity: Int) {
        self.capacity = capacity
        self.sendToken = sendToken
        self.sendMeta = sendMeta
        self.tokenRows = tokenRows
        self.tokenCapacity = tokenCapacity
    }
}

/// The receive side: received rows rearranged expert-major, contiguous per local slot.
public final class ExpertLayout<Buffer: DeviceBuffer> {
    /// Entry capacity (≥ received rows × K).
    public let capacity: Int
    /// Received row of each expert-major entry, int32 [capacity].
    public let entryRow: Buffer
    /// Expert-major position of each (received row, k) pair, or −1 when unused, int32 [rows × K].
    public let entryPosition: Buffer

    public init(capacity: Int, entryRow: Buffer, entryPosition: Buffer) {
        self.capacity = capacity
        self.entryRow = entryRow
        self.entryPosition = entryPosition
    }
}
