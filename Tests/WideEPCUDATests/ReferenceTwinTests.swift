import Testing
import WideEPCore
@testable import WideEPCUDA

@Suite("CPU twins of the CUDA kernels")
struct ReferenceTwinTests {
    @Test func bf16RoundsToNearestEvenAndKeepsNaN() {
        #expect(BF16.bits(1.0) == 0x3F80)
        // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        #expect(BF16.bits(1 + 0x1p-8) == 0x3F80)
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
        #expect(BF16.float(BF16.bits(1 + 3 * 0x1p-8)) == 1 + 0x1p-6)
        #expect(BF16.float(BF16.bits(.nan)).isNaN)
        #expect(BF16.float(BF16.bits(-2.5)) == -2.5)
        var rng = SplitMix64(seed: 7)
        for _ in 0..<1000 {
            let f = (rng.unitFloat() - 0.5) * 100
            let r = BF16.round(f)
            #expect(abs(r - f) <= abs(f) * 0x1p-8)
            #expect(BF16.round(r) == r)
        }
    }

    @Test func randomFillIsDeterministicBoundedAndPerBlock() {
        let a = (0..<512).map { RandomFill.value(seed: 9, block: 3, index: $0, scale: 2) }
        let b = (0..<512).map { RandomFill.value(seed: 9, block: 3, index: $0, scale: 2) }
        let c = (0..<512).map { RandomFill.value(seed: 9, block: 4, index: $0, scale: 2) }
        #expect(a == b)
        #expect(a != c)
        #expect(a.allSatisfy { $0 >= -1 && $0 < 1 })
        let mean = a.reduce(0, +) / Float(a.count)
        #expect(abs(mean) < 0.15)
    }

    @Test func slotMapGivesEachSlotItsQuotaInStableOrder() throws {
        var rng = SplitMix64(seed: 11)
        let e = 8, k = 2, t = 200
        let p = try Placement(slotExpert: [0, 1, 2, 3, 4, 5, 6, 7, 2, 2, 5], numExperts: e, numRanks: 1,
                              allowSameRankReplicas: true)
        let experts = (0..<(t * k)).map { _ in Int32(rng.next() % UInt64(e)) }
        let counts = SlotMapReference.count(experts: experts, numExperts: e)
        #expect(counts.reduce(0, +) == Int32(t * k))
        let quotas = SlotMapReference.replicaQuotas(counts: counts, placement: p, policy: .even)
        let tb = SlotMapReference.tables(quotas: quotas, placement: p)
        #expect(tb.slotRows.reduce(0, +) == t * k)
        let m = SlotMapReference.map(experts: experts, quotas: quotas, placement: p)
        // Every row is used exactly once and lands inside its slot's range, in (token, k) order.
        #expect(Set(m.position).count == t * k)
        var lastInSlot = [Int32](repeating: -1, count: p.numSlots)
        for (i, pos) in m.position.enumerated() {
            let s = Int(m.slot[i])
            #expect(p.slotExpert[s] == experts[i])
            let start = Int(tb.slotRowStart[s])
            #expect(Int(pos) >= start && Int(pos) < start + tb.slotRows[s])
            #expect(pos > lastInSlot[s])
            lastInSlot[s] = pos
        }
        // An even split never differs by more than one token between replicas of an expert.
        for ex in 0..<e {
            let qs = (Int(p.replicaStart[ex])..<Int(p.replicaStart[ex + 1])).map { quotas[$0] }
            #expect(qs.max()! - qs.min()! <= 1)
        }
    }

    @Test(arguments: [SplitPolicy.even, .balanced])
    func slotMapTwinAgreesWithCoreMapTokens(policy: SplitPolicy) throws {
        var rng = SplitMix64(seed: UInt64(policy == .even ? 3 : 4))
        let e = 16, n = 600
        var table = (0..<e).map { Int32($0) }
        for _ in 0..<10 { table.append(Int32(rng.next() % UInt64(e))) }
        let p = try Placement(slotExpert: table, numExperts: e, numRanks: 1, allowSameRankReplicas: true)
        let experts = (0..<n).map { _ in Int32(min(e - 1, Int(Float(e) * rng.unitFloat() * rng.unitFloat()))) }
        let counts = SlotMapReference.count(experts: experts, numExperts: e)
        let perSlot = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: p, policy: policy)
        let core = ReplicaSplit.mapTokens(
            experts: experts, rankOffsets: [Int32](repeating: 0, count: e), quotas: perSlot.map { Int32($0) },
            placement: p)
        let ours = SlotMapReference.map(
            experts: experts, quotas: SlotMapReference.replicaQuotas(counts: counts, placement: p, policy: policy),
            placement: p)
        #expect(ours.slot == core)
    }

    @Test func permuteAndCombineInvertEachOtherForUnitWeights() {
        let t = 5, k = 2, h = 8
        let x = (0..<(t * h)).map { BF16.bits(Float($0 % 13) - 6) }
        let position: [Int32] = [3, 0, 9, 1, 2, 8, 4, 7, 6, 5]
        let xs = SlotMapReference.permute(x: x, position: position, topK: k, hidden: h, rows: t * k)
        let out = FFNReference.combine(
            ys: BF16.floats(xs), position: position, weights: [Float](repeating: 0.5, count: t * k), shared: nil,
            tokens: t, topK: k, hidden: h)
        #expect(out == BF16.floats(x))
    }

    @Test func relativeErrorRejectsPoison() {
        #expect(relativeError([1, .nan], [1, 2]).isNaN)
        #expect(!(relativeError([1, .nan], [1, 2]) <= 1e-2))
        #expect(relativeError([1, 2], [1, 2]) == 0)
    }
}
