import Foundation
import Testing
import WideEPCore
import WideEPTestSupport
import WideEPWorkload

/// `wide-ep run` end to end on a tiny model (debug builds are slow, so everything here is small).
@Suite struct RunCommandTests {
    /// A tiny DeepSeek-style model: 8 experts in 2 groups, top-2, 2 MoE layers.
    static let tiny = [
        "--set", "numExperts=8", "--set", "numGroups=2", "--set", "topKGroup=1", "--set", "topK=2",
        "--set", "hiddenSize=16", "--set", "moeIntermediateSize=8", "--set", "numMoELayers=2",
    ]
    static let short = ["--ep-size", "2", "--steps", "12", "--tokens-per-step", "16", "--rebalance-interval", "3"]

    @Test func runVerifiesDumpsStatsThatPlanReadsAndReplaysThem() throws {
        let dir = TemporaryDirectory()
        let report = try CLI.json(
            ["run"] + Self.tiny + Self.short + ["--verify-every", "4", "--dump-stats", "s.safetensors", "--json"],
            in: dir.path)
        #expect(report["verificationMismatches"] as? Int == 0)
        #expect(report["verifications"] as? Int == 6)
        #expect(report["staleSlotObservations"] as? Int == 0)
        #expect(report["tokens"] as? Int == 12 * 16)
        #expect((report.double("tokensPerSecond") ?? 0) > 0)
        // Serving time leaves out the first step, the verified steps and the harness, so it is inside the wall time.
        let serving = report.double("servingSeconds") ?? -1, wall = report.double("seconds") ?? -1
        #expect(serving > 0 && serving < wall, "serving \(serving) s, wall \(wall) s")
        #expect((report.double("wallTokensPerSecond") ?? 0) > 0)
        let stats = try StatsFile.load(path: dir.file("s.safetensors"))
        #expect(stats.numSteps == 12)
        #expect(stats.totals.count == 2)
        #expect(stats.totals[0].reduce(0, +) == Double(12 * 16 * 2))
        try CLI.ok(["plan", "--stats", "s.safetensors", "--ep-size", "2", "--num-slots", "10", "--output", "p.yaml"],
                   in: dir.path)
        let replay = try CLI.json(
            ["run"] + Self.tiny + Self.short + ["--placement", "p.yaml", "--balancer", "static", "--trace",
                                                "s.safetensors", "--verify-every", "6", "--json"], in: dir.path)
        #expect(replay["verificationMismatches"] as? Int == 0)
        #expect(replay["numSlots"] as? Int == 10)
        #expect(replay["rebalances"] as? Int == 0)
    }

    @Test func compareRunsAllThreeBalancersOnTheSameTraffic() throws {
        let dir = TemporaryDirectory()
        let out = try CLI.json(["run"] + Self.tiny + Self.short + ["--compare", "--json"], in: dir.path)
        let runs = out["runs"] as? [[String: Any]] ?? []
        #expect(runs.map { $0["balancer"] as? String } == ["off", "static", "online"])
        #expect(runs[0]["rebalances"] as? Int == 0)
        let text = try CLI.ok(["run"] + Self.tiny + Self.short + ["--compare"], in: dir.path)
        #expect(text.contains("imbalance mean"))
        #expect(text.contains("online"))
    }

    @Test func badRunFlagsAndFilesExitTwo() throws {
        let dir = TemporaryDirectory()
        try CLI.fails(["run", "--ep-size", "0"], in: dir.path, with: ["--ep-size must be >= 1"])
        try CLI.fails(["run"] + Self.tiny + ["--ep-size", "2", "--num-slots", "7"], in: dir.path, with: ["7", "2"])
        try CLI.fails(["run", "--balancer", "sometimes"], in: dir.path, with: ["sometimes"])
        try CLI.fails(["run", "--steps", "0"], in: dir.path, with: ["--steps must be >= 1"])
        try CLI.fails(["run", "--device", "tpu"], in: dir.path, with: ["unknown device 'tpu'", "cpu"])
        try CLI.fails(["run"] + Self.tiny + ["--trace", "missing.safetensors", "--dump-stats", "out.json"],
                      in: dir.path, with: ["missing.safetensors"])
        try CLI.fails(["run", "--compare", "--balancer", "off"], in: dir.path, with: ["--compare"])
        try CLI.fails(["run", "--preset", "deepseek-v3"], in: dir.path, with: ["GiB", "of RAM", "--set"])
        let p = try Placement.identity(numExperts: 8, numRanks: 2)
        try PlacementFile(placements: [p]).save(path: dir.file("one-layer.yaml"))
        try CLI.fails(["run"] + Self.tiny + ["--ep-size", "2", "--placement", "one-layer.yaml"], in: dir.path,
                      with: ["one-layer.yaml", "1 layers", "2"])
        try StatsFile(totals: [[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]]).save(path: dir.file("totals.json"))
        try CLI.fails(["run"] + Self.tiny + ["--ep-size", "2", "--trace", "totals.json"], in: dir.path,
                      with: ["totals.json", "per-step"])
        #expect(dir.entries == ["one-layer.yaml", "totals.json"])
    }
}
