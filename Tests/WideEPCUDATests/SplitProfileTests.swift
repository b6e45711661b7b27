import Testing
@testable import WideEPCUDA

/// The means `bench split` prints from the split kernel's six summed counter words.
struct SplitProfileTests {
    /// Counters as an H100 read them back for 116 launches (two fallbacks added): every mean is the sum over the
    /// launch count, the clock is cycles per ns, and the fallbacks come from the levels word's high half. Large
    /// sums keep their value (a bit-pattern conversion would turn each into a denormal near 0).
    @Test func meansPerLaunchFromTheCounterWords() {
        let raw: [UInt64] = [314_967, 1_507_989, 753_216, 116, 443, 410 | 2 << 32]
        let p = SplitBenchmark.Profile(counters: raw)
        #expect(p.launches == 116)
        #expect(abs(p.prologueCycles - 314_967.0 / 116) < 1e-9)
        #expect(abs(p.totalCycles - 1_507_989.0 / 116) < 1e-9)
        #expect(abs(p.nanos - 753_216.0 / 116) < 1e-9)
        #expect(abs(p.clockMHz - 1_507_989.0 / 753_216 * 1000) < 1e-9)
        #expect(abs(p.passes - 443.0 / 116) < 1e-12)
        #expect(abs(p.levels - 410.0 / 116) < 1e-12)
        #expect(p.fallbacks == 2)
        #expect(p.raw == raw)
        // Sums past 2^53 stay large and positive.
        let big = SplitBenchmark.Profile(counters: [1 << 60, 1 << 61, 1 << 59, 1, 1, 1])
        #expect(big.totalCycles > 1e18 && big.clockMHz == 4000)
    }

    /// No launch recorded: the launch count reads 0 and nothing is divided by it.
    @Test func emptyCountersReadAsNoLaunches() {
        let p = SplitBenchmark.Profile(counters: [UInt64](repeating: 0, count: 6))
        #expect(p.launches == 0 && p.totalCycles == 0 && p.passes == 0 && p.clockMHz == 0)
    }
}
