import Foundation
import Testing
import WideEPCore
import WideEPTestSupport
import WideEPWorkload

/// trace generate → plan → eval on the small deepseek-v3-mini preset (4 layers, 64 experts), checked against the
/// libraries the commands wrap.
@Suite(.serialized) struct PipelineTests {
    @Test func traceThenPlanThenEval() throws {
        let dir = TemporaryDirectory()
        try CLI.ok(["trace", "generate", "--preset", "deepseek-v3-mini", "--steps", "40", "--tokens-per-step", "512",
                    "--skew", "1.0", "--shift-every", "20", "--seed", "3", "--output", "trace.safetensors"], in: dir.path)
        let trace = try StatsFile.load(path: dir.file("trace.safetensors"))
        #expect(trace.numSteps == 40 && trace.numLayers == 4 && trace.numExperts == 64)
        #expect(trace.perStep!.allSatisfy { $0.allSatisfy { $0.reduce(0, +) == 512 * 8 } })
        #expect(trace.metadata.model == "deepseek-v3-mini")

        let plan = try CLI.json(["plan", "--stats", "trace.safetensors", "--steps", "0:20", "--ep-size", "8",
                                 "--num-slots", "72", "--preset", "deepseek-v3-mini", "--output", "p.yaml", "--json"],
                                in: dir.path)
        #expect(plan["policy"] as? String == "balanced")
        #expect(plan["groups"] as? Int == 8)  // from the preset
        let before = try #require(plan.double("meanImbalanceBefore"))
        let after = try #require(plan.double("meanImbalanceAfter"))
        #expect(after < before)
        let placements = try PlacementFile.load(path: dir.file("p.yaml"))
        #expect(placements.numLayers == 4 && placements.numRanks == 8 && placements.numSlots == 72)

        // The command's predicted numbers are those of the planner on the same loads.
        let firstHalf = try trace.steps(0..<20)
        let request = PlannerRequest(numSlots: 72, topology: try Topology(numRanks: 8), numExpertGroups: 8)
        let expected = try Planner.plan(loads: firstHalf.totals, request: request)
        #expect(expected == placements.placements)

        for split in SplitPolicy.allCases {
            let eval = try CLI.json(["eval", "--placement", "p.yaml", "--stats", "trace.safetensors", "--steps", "20:40",
                                     "--split", split.rawValue, "--json"], in: dir.path)
            let reference = try PlacementEvaluator.evaluate(
                placements: placements.placements, steps: try trace.steps(20..<40).perStep!, split: split)
            #expect(eval["steps"] as? Int == 20)
            #expect(abs(try #require(eval.double("meanImbalance")) - reference.mean) < 1e-12)
            #expect(abs(try #require(eval.double("p99Imbalance")) - reference.p99) < 1e-12)
            #expect(abs(try #require(eval.double("balancedness")) - reference.balancedness) < 1e-12)
            #expect((eval["layers"] as? [Any])?.count == 4)
        }
    }

    @Test func migrationAwareReplanReportsMoves() throws {
        let dir = TemporaryDirectory()
        try CLI.ok(["trace", "generate", "--preset", "deepseek-v3-mini", "--steps", "30", "--tokens-per-step", "256",
                    "--drift", "0.2", "--output", "t.json"], in: dir.path)
        try CLI.ok(["plan", "--stats", "t.json", "--steps", "0:10", "--ep-size", "8", "--num-slots", "80",
                    "--output", "old.yaml"], in: dir.path)
        let replan = try CLI.json(["plan", "--stats", "t.json", "--steps", "10:30", "--ep-size", "8", "--num-slots", "80",
                                   "--current", "old.yaml", "--decay", "0.9", "--preset", "deepseek-v3-mini",
                                   "--output", "new.yaml", "--json"], in: dir.path)
        let old = try PlacementFile.load(path: dir.file("old.yaml"))
        let new = try PlacementFile.load(path: dir.file("new.yaml"))
        let moves = zip(old.placements, new.placements).reduce(0) { $0 + $1.0.moves(to: $1.1) }
        #expect(replan["totalMoves"] as? Int == moves)
        #expect(replan["bytesMoved"] as? Int == moves * MoEConfig.deepseekV3Mini.expertBytes())
        // "before" is the current placement judged on the decayed loads the plan used.
        let loads = try StatsFile.load(path: dir.file("t.json")).steps(10..<30).decayedTotals(decay: 0.9)
        let rows = try #require(replan["layers"] as? [[String: Any]])
        for (l, row) in rows.enumerated() {
            let b = Imbalance.ratio(old.placements[l].rankLoads(expertLoads: loads[l]))
            #expect(abs(try #require(row.double("before")) - b) < 1e-12)
        }
    }

    @Test func traceFromRealProfilesKeepsLayerIds() throws {
        let dir = TemporaryDirectory()
        let r1 = TestData.expertLoadDirectory + "/sglang_dsv3_decode_in2000out100.json"
        try CLI.ok(["trace", "generate", "--preset", "deepseek-r1", "--from-stats", r1, "--steps", "2",
                    "--tokens-per-step", "64", "--output", "real.safetensors"], in: dir.path)
        let t = try StatsFile.load(path: dir.file("real.safetensors"))
        #expect(t.numSteps == 2 && t.numLayers == 58 && t.metadata.layerIds == Array(3...60))
        try CLI.ok(["plan", "--stats", "real.safetensors", "--ep-size", "32", "--num-slots", "256", "--policy", "none",
                    "--output", "id.yaml"], in: dir.path)
        let p = try PlacementFile.load(path: dir.file("id.yaml"))
        #expect(p.layerIds == Array(3...60))
        #expect(p.placements.allSatisfy { $0.slotExpert == (0..<256).map { Int32($0) } })
    }

    @Test func evalOfTotalsOnlyFileSaysSo() throws {
        let dir = TemporaryDirectory()
        let stats = try StatsFile(totals: [[10, 1, 1, 1], [4, 4, 4, 4]])
        try stats.save(path: dir.file("tot.json"))
        try CLI.ok(["plan", "--stats", "tot.json", "--ep-size", "2", "--num-slots", "4", "--policy", "none",
                    "--output", "id.yaml"], in: dir.path)
        let r = try CLI.run(["eval", "--placement", "id.yaml", "--stats", "tot.json", "--split", "even"], in: dir.path)
        #expect(r.status == 0)
        #expect(r.stderr.contains("no per-step axis"))
        // Layer 0: ranks hold 11 and 2 tokens → (11 − 6.5)/6.5; layer 1 is balanced.
        #expect(r.stdout.contains(String(format: "mean %.4f", (11 - 6.5) / 6.5 / 2)))
    }
}
