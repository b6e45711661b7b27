import Testing
import WideEPCore
@testable import WideEPCUDA

/// The closed-form water-fills of the one-warp split (two ranks, three or four ranks) against Core's own split.
extension SplitTablesTests {
    /// Core's water-fill of `c` tokens for expert 0 on ranks 0 and 1 whose other loads are `a` and `b` (single-rank
    /// experts 1 and 2): with one multi expert, Core's split is exactly one water-fill.
    static func coreFillPair(count c: Int32, loads a: Int32, _ b: Int32) -> [Int64] {
        let pl = try! Placement(slotExpert: [0, 1, 0, 2], numExperts: 3, numRanks: 2)
        let q = ReplicaSplit.quotas(expertCounts: [Int(c), Int(a), Int(b)], placement: pl, policy: .balanced)
        return [Int64(q[0]), Int64(q[2])]
    }

    /// The kernel's closed-form two-rank water-fill against Core's and the twin's general one: every count and pair
    /// of loads up to 13 (ties, remainders, the heavier rank joining or not), then fresh random values up to 2^31.
    @Test func pairWaterFillMatchesCoreExhaustivelyAndOnLargeValues() {
        for c in Int32(0)..<14 {
            for a in Int32(0)..<14 {
                for b in Int32(0)..<14 {
                    let pair = SplitReference.waterFillPair(count: Int64(c), loads: [Int64(a), Int64(b)])
                    #expect(pair == Self.coreFillPair(count: c, loads: a, b), "c \(c) loads \(a) \(b)")
                    #expect(pair == SplitReference.waterFill(count: Int64(c), loads: [Int64(a), Int64(b)]))
                }
            }
        }
        var rng = SplitMix64(seed: 0x9a1)
        for trial in 0..<400 {
            // Half the trials keep the loads close (the heavier rank joins), half spread them freely.
            let c = Int32(truncatingIfNeeded: rng.next() % (1 << 30))
            let a = Int32(truncatingIfNeeded: rng.next() % (1 << 30))
            let b = trial % 2 == 0 ? max(0, a + Int32(truncatingIfNeeded: rng.next() % 2001) - 1000)
                : Int32(truncatingIfNeeded: rng.next() % (1 << 30))
            let cc = trial % 4 == 0 ? Int32(truncatingIfNeeded: rng.next() % 3000) : c
            let pair = SplitReference.waterFillPair(count: Int64(cc), loads: [Int64(a), Int64(b)])
            #expect(pair == Self.coreFillPair(count: cc, loads: a, b), "c \(cc) loads \(a) \(b)")
            let big = [Int64(a) << 10, Int64(b) << 10 | Int64(rng.next() % 1024)]
            #expect(SplitReference.waterFillPair(count: Int64(cc), loads: big)
                == SplitReference.waterFill(count: Int64(cc), loads: big))
        }
    }

    /// Core's water-fill of `c` tokens for expert 0 on ranks 0..<k (k = loads.count) whose other loads are `loads`
    /// (single-rank experts 1…k): with one multi expert, Core's split is exactly one water-fill.
    static func coreFill(count c: Int32, loads: [Int32]) -> [Int64] {
        let k = loads.count
        let slotExpert = (0..<k).flatMap { r -> [Int32] in [0, Int32(r + 1)] }
        let pl = try! Placement(slotExpert: slotExpert, numExperts: k + 1, numRanks: k)
        let q = ReplicaSplit.quotas(expertCounts: [Int(c)] + loads.map { Int($0) }, placement: pl, policy: .balanced)
        return (0..<k).map { Int64(q[2 * $0]) }
    }

    /// The kernel's three/four-rank water-fill against Core's and the twin's general one: every count and three loads
    /// in 0...9 (ties, remainders 0…2, 1 to 3 ranks joining), a fresh random sample of small four-rank cases, then
    /// random values up to 2^30 (and Int64 loads) with the loads spread or close.
    @Test func quadWaterFillMatchesCoreExhaustivelyAndOnLargeValues() {
        for c in Int32(0)...9 {
            for a in Int32(0)...9 {
                for b in Int32(0)...9 {
                    for d in Int32(0)...9 {
                        let lv = [Int64(a), Int64(b), Int64(d)]
                        let quad = SplitReference.waterFillQuad(count: Int64(c), loads: lv)
                        #expect(quad == Self.coreFill(count: c, loads: [a, b, d]), "c \(c) loads \(a) \(b) \(d)")
                        #expect(quad == SplitReference.waterFill(count: Int64(c), loads: lv))
                    }
                }
            }
        }
        var rng = SplitMix64(seed: 0x4a7)
        for _ in 0..<3000 {
            let c = Int32(truncatingIfNeeded: rng.next() % 31)
            let loads = (0..<4).map { _ in Int32(truncatingIfNeeded: rng.next() % 13) }
            let quad = SplitReference.waterFillQuad(count: Int64(c), loads: loads.map { Int64($0) })
            #expect(quad == Self.coreFill(count: c, loads: loads), "c \(c) loads \(loads)")
        }
        for trial in 0..<400 {
            let k = 3 + trial % 2
            let a = Int32(truncatingIfNeeded: rng.next() % (1 << 30))
            let loads = (0..<k).map { _ in
                trial % 4 < 2 ? max(0, a + Int32(truncatingIfNeeded: rng.next() % 2001) - 1000)
                    : Int32(truncatingIfNeeded: rng.next() % (1 << 30))
            }
            let c = trial % 3 == 0 ? Int32(truncatingIfNeeded: rng.next() % 5000)
                : Int32(truncatingIfNeeded: rng.next() % (1 << 30))
            let quad = SplitReference.waterFillQuad(count: Int64(c), loads: loads.map { Int64($0) })
            #expect(quad == Self.coreFill(count: c, loads: loads), "c \(c) loads \(loads)")
            let big = loads.map { Int64($0) << 12 | Int64(rng.next() % 4096) }
            #expect(SplitReference.waterFillQuad(count: Int64(c), loads: big)
                == SplitReference.waterFill(count: Int64(c), loads: big))
        }
    }
}
