import Foundation
import CUDADriver
import WideEPCore

extension CUDASelftest {
    /// Tolerance of the timing rows: reported, never gated (timings vary with the card and its load; the ≤ 10 µs
    /// target and the measured values are in docs/PERFORMANCE.md). Finite so `--json` can encode it.
    static let untimedTolerance = Double.greatestFiniteMagnitude

    /// Random shapes of the split check: (experts, ranks, slots per rank, same-rank replicas allowed, cases, huge
    /// batches: about 2^30 tokens, past the one-warp kernel's 32-bit path).
    static let splitShapes: [(e: Int, r: Int, p: Int, sameRank: Bool, cases: Int, huge: Bool)] = [
        (256, 32, 9, false, 40, false), (256, 8, 40, false, 25, false), (256, 72, 4, false, 25, false),
        (64, 8, 9, false, 10, false), (16, 4, 6, true, 10, false), (256, 8, 40, true, 10, false),
        (256, 32, 9, false, 10, true), (48, 8, 9, false, 10, false),
    ]

    /// The GPU balanced split on 140 random layers (a fresh placement and batch each, EP 4/8/32/72, same-rank
    /// replicas, sparse, empty and ~2^30-token batches; the last shape mixes two-rank experts with wider ones in
    /// the same levels, so both water-fill paths run in one warp): conservation, identical quotas to the CPU twin
    /// (default certified stop and `.core`), identical quotas to Core with `.core` (and from the previous
    /// level-parallel kernel), the default stop's max rank load ≤ 1.01 × Core's; then the time per layer on the
    /// DeepSeek shape (E 256, EP 32, 288 slots).
    mutating func balancedSplit() throws -> [SelftestRow] {
        var rows: [SelftestRow] = []
        for s in Self.splitShapes {
            var cases: [SplitBenchmark.Case] = []
            for i in 0..<s.cases {
                let pl = try SplitCases.hotPlacement(
                    experts: s.e, ranks: s.r, slotsPerRank: s.p, sameRank: s.sameRank, rng: &rng)
                var counts = SplitCases.skewedCounts(
                    experts: s.e, tokens: s.huge ? 1 << 24 : i % 2 == 0 ? 4096 : 200, rng: &rng)
                // Every fifth batch is sparse: about one expert in ten keeps its tokens.
                if i % 5 == 4 { for e in 0..<s.e where rng.next() % 10 != 0 { counts[e] = 0 } }
                cases.append(SplitBenchmark.Case(placement: pl, counts: counts))
            }
            let c = try SplitBenchmark(gpu: gpu, cases: cases).check()
            let shape = "E=\(s.e) EP=\(s.r) slots=\(s.r * s.p)\(s.sameRank ? " same-rank" : "")\(s.huge ? " huge" : "") "
                + "×\(s.cases) "
                + "(one-warp kernel on \(c.warpCases))"
            rows += [
                SelftestRow(name: "balanced_split conservation", shape: shape, metric: "mismatches",
                            value: Double(c.conservationErrors), tolerance: 0),
                SelftestRow(name: "balanced_split vs twin quotas", shape: shape, metric: "mismatches",
                            value: Double(c.twinMismatches), tolerance: 0),
                SelftestRow(name: "balanced_split core stop vs Core quotas", shape: shape, metric: "mismatches",
                            value: Double(c.exactCoreMismatches), tolerance: 0),
                SelftestRow(name: "balanced_split level-parallel kernel vs Core quotas", shape: shape,
                            metric: "mismatches", value: Double(c.levelsMismatches), tolerance: 0),
                SelftestRow(name: "balanced_split max rank load / Core", shape: shape + String(
                                format: " (mean %.5f, %d fallbacks to Core's schedule)", c.meanPeakRatio,
                                c.fallbacks),
                            metric: "ratio", value: c.worstPeakRatio, tolerance: 1.01),
            ]
        }
        rows += try splitTime()
        return rows
    }

    /// Time per layer on the DeepSeek shape over 16 random layers (rotating inputs): the kernel by CUDA graph and by
    /// back-to-back launches, next to the previous kernels (level-parallel, serial) and Core's CPU split;
    /// informational.
    mutating func splitTime() throws -> [SelftestRow] {
        var cases: [SplitBenchmark.Case] = []
        for _ in 0..<16 {
            let pl = try SplitCases.hotPlacement(experts: 256, ranks: 32, slotsPerRank: 9, sameRank: false, rng: &rng)
            cases.append(SplitBenchmark.Case(
                placement: pl, counts: SplitCases.skewedCounts(experts: 256, tokens: 4096, rng: &rng)))
        }
        let t = try SplitBenchmark(gpu: gpu, cases: cases).time()
        let shape = "E=256 EP=32 slots=288 ×16"
        return [
            SelftestRow(
                name: "balanced_split time (graph)",
                shape: shape + String(
                    format: " (core stop %.2f µs, level-parallel kernel %.2f µs, serial kernel %.2f µs, CPU Core "
                        + "%.2f µs: %.1f× / %.1f×)",
                    t.coreStopGraphMicros, t.levelsGraphMicros, t.serialGraphMicros, t.cpuMicros,
                    t.levelsGraphMicros / t.gpuGraphMicros, t.cpuMicros / t.gpuGraphMicros),
                metric: "µs/layer", value: t.gpuGraphMicros, tolerance: Self.untimedTolerance),
            SelftestRow(
                name: "balanced_split time (graph, loaded card)",
                shape: shape + String(format: " (level-parallel kernel %.2f µs, serial kernel %.2f µs)",
                                      t.levelsGraphLoadedMicros, t.serialGraphLoadedMicros),
                metric: "µs/layer", value: t.gpuGraphLoadedMicros, tolerance: Self.untimedTolerance),
            SelftestRow(name: "balanced_split time (launches)", shape: shape, metric: "µs/layer",
                        value: t.gpuEagerMicros, tolerance: Self.untimedTolerance),
        ]
    }
}
