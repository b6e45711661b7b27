import Testing
import WideEPCore
@testable import WideEPCUDA

/// Slot copies are cut where a page-locked range begins or ends, so no single copy spans pinned and pageable memory.
struct PinnedRangesTests {
    @Test func piecesCoverTheCopyAndNeverStraddleAPinnedEdge() {
        var rng = SplitMix64(seed: 0x51_07)
        for _ in 0..<300 {
            let pinned = PinnedRanges()
            var ranges: [Range<Int>] = []
            var at = 4096 * Int(rng.next() % 8)
            for _ in 0..<Int(rng.next() % 4) {
                at += 4096 * Int(rng.next() % 3)
                let r = at..<(at + 4096 * (1 + Int(rng.next() % 4)))
                ranges.append(r)
                pinned.insert(r)
                at = r.upperBound
            }
            let start = Int(rng.next() % 40_000), count = 1 + Int(rng.next() % 30_000)
            let pieces = pinned.pieces(start: start, count: count)
            // Contiguous, in order, covering exactly the copy.
            #expect(pieces.first?.lowerBound == start)
            #expect(pieces.last?.upperBound == start + count)
            for (a, b) in zip(pieces, pieces.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            // Each piece is wholly inside one pinned range or outside all of them.
            for p in pieces {
                let inside = ranges.contains { $0.lowerBound <= p.lowerBound && p.upperBound <= $0.upperBound }
                let outside = ranges.allSatisfy { $0.upperBound <= p.lowerBound || $0.lowerBound >= p.upperBound }
                #expect(inside || outside, "piece \(p) straddles a pinned edge of \(ranges)")
            }
        }
    }

    @Test func removedRangesNoLongerCut() {
        let pinned = PinnedRanges()
        pinned.insert(4096..<8192)
        #expect(pinned.pieces(start: 0, count: 10_000).count == 3)
        pinned.remove(4096..<8192)
        #expect(pinned.pieces(start: 0, count: 10_000) == [0..<10_000])
    }
}
