import ArgumentParser
import Foundation
import WideEPCore
import WideEPWorkload

/// `wide-ep bench quality`: realized imbalance of every policy × split on generated skewed, drifting traces, plus
/// migration-aware vs from-scratch re-planning moves.
struct BenchQualityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quality",
        abstract: "Realized imbalance of none/greedy/deepseek/balanced × even/balanced split on generated traces.",
        discussion: """
            Two scenarios: deepseek-v3 (256 experts) at EP32 with 288 slots on 4 nodes, and qwen3-235b-a22b \
            (128 experts) at EP16 with 144 slots on 2 nodes. Each plans on the summed counts of the first half of \
            the steps and is judged on every step of the second half (DESIGN.md §8). 'none' is the contiguous \
            placement without replicas. Re-planning: a balanced plan from the first quarter is re-planned on the \
            second quarter from scratch and migration-aware; both are judged on the second half.
            """)

    @Option(help: "Steps per trace.")
    var steps: Int = 200
    @Option(name: .customLong("tokens-per-step"), help: "Tokens per step.")
    var tokensPerStep: Int = 8192
    @Option(help: "Popularity skew (log-normal sigma).")
    var skew: Double = 0.8
    @Option(help: "Popularity drift per step (random-walk sigma).")
    var drift: Double = 0.02
    @Option(name: .customLong("shift-every"), help: "Steps between traffic-mix shifts (0 = none).")
    var shiftEvery: Int = 0
    @Option(help: "Trace seed.")
    var seed: UInt64 = 1
    @Option(help: "Use only the first N MoE layers of each model (0 = all).")
    var layers: Int = 0
    @Flag(help: "Print JSON instead of tables.")
    var json = false

    struct Row: Codable {
        var scenario: String
        var policy: String
        var split: String
        var realizedMean: Double
        var realizedP99: Double
        var balancedness: Double
        var ratioToGreedyEven: Double
    }

    struct Replan: Codable {
        var scenario: String
        var fromScratchMoves: Int
        var fromScratchAlignedMoves: Int
        var migrationAwareMoves: Int
        var movesRatio: Double
        var alignedMovesRatio: Double
        var fromScratchRealized: Double
        var migrationAwareRealized: Double
        var totalSlots: Int
    }

    struct Result: Codable {
        var options: TrafficOptions
        var rows: [Row]
        var replans: [Replan]
    }

    struct Scenario {
        var name: String
        var config: MoEConfig
        var ranks: Int
        var slots: Int
        var nodes: Int
    }

    func validate() throws {
        guard steps >= 4 else { throw ValidationError("--steps must be >= 4, got \(steps)") }
        guard layers >= 0 else { throw ValidationError("--layers must be >= 0, got \(layers)") }
    }

    func run() throws {
        let options = TrafficOptions(
            steps: steps, tokensPerStep: tokensPerStep, seed: seed, skew: skew, drift: drift, shiftEvery: shiftEvery)
        try options.validate()
        let scenarios = [
            Scenario(name: "deepseek-v3 EP32/288", config: .deepseekV3, ranks: 32, slots: 288, nodes: 4),
            Scenario(name: "qwen3-235b EP16/144", config: .qwen3_235B, ranks: 16, slots: 144, nodes: 2),
        ]
        var rows: [Row] = []
        var replans: [Replan] = []
        for sc in scenarios {
            var config = sc.config
            if layers > 0 { config.numMoELayers = min(layers, config.numMoELayers) }
            CLIOutput.progress("bench quality: \(sc.name): generating \(steps) steps × \(config.numMoELayers) layers")
            let trace = try TrafficGenerator(config: config, options: options).generate()
            let half = steps / 2
            let planLoads = trace.summed(steps: 0..<half)
            let evalSteps = (half..<steps).map(trace.step)
            let topo = try Topology(numRanks: sc.ranks, numNodes: sc.nodes)
            var scenarioRows: [Row] = []
            for policy in PlannerPolicy.allCases {
                CLIOutput.progress("bench quality: \(sc.name): \(policy.rawValue)")
                let slots = policy == .none ? config.numExperts : sc.slots
                let req = PlannerRequest(numSlots: slots, topology: topo, policy: policy, numExpertGroups: config.numGroups)
                let plan = try Planner.plan(loads: planLoads, request: req)
                for split in SplitPolicy.allCases {
                    let s = try PlacementEvaluator.evaluate(placements: plan, steps: evalSteps, split: split)
                    scenarioRows.append(Row(
                        scenario: sc.name, policy: policy.rawValue, split: split.rawValue, realizedMean: s.mean,
                        realizedP99: s.p99, balancedness: s.balancedness, ratioToGreedyEven: 0))
                }
            }
            let base = scenarioRows.first { $0.policy == "greedy" && $0.split == "even" }!.realizedMean
            for i in scenarioRows.indices { scenarioRows[i].ratioToGreedyEven = scenarioRows[i].realizedMean / base }
            rows += scenarioRows
            replans.append(try replan(sc, config: config, trace: trace, topology: topo, evalSteps: evalSteps))
        }
        let result = Result(options: options, rows: rows, replans: replans)
        if json { try CLIOutput.printJSON(result); return }
        print("trace: \(steps) steps, \(tokensPerStep) tokens/step, skew \(skew), drift \(drift), shift every "
            + "\(shiftEvery), seed \(seed); plan on steps [0, \(steps / 2)), judge on [\(steps / 2), \(steps))")
        var table = [["scenario", "policy", "split", "realized mean", "p99", "balancedness", "vs greedy+even"]]
        for r in rows {
            table.append([r.scenario, r.policy, r.split, String(format: "%.4f", r.realizedMean),
                          String(format: "%.4f", r.realizedP99), String(format: "%.4f", r.balancedness),
                          String(format: "%.2f×", r.ratioToGreedyEven)])
        }
        print(CLIOutput.table(table))
        print("")
        var mt = [["scenario", "from-scratch moves", "aligned from-scratch", "migration-aware", "ratio (raw / aligned)",
                   "realized scratch / aware"]]
        for r in replans {
            mt.append([
                r.scenario, "\(r.fromScratchMoves) of \(r.totalSlots)", "\(r.fromScratchAlignedMoves)",
                "\(r.migrationAwareMoves)", String(format: "%.3f / %.3f", r.movesRatio, r.alignedMovesRatio),
                String(format: "%.4f / %.4f", r.fromScratchRealized, r.migrationAwareRealized),
            ])
        }
        print(CLIOutput.table(mt))
    }

    /// Plans balanced on the first quarter, then re-plans on the second quarter from scratch and migration-aware.
    func replan(_ sc: Scenario, config: MoEConfig, trace: TrafficTrace, topology: Topology, evalSteps: [[[Double]]])
        throws -> Replan
    {
        let q = steps / 4
        let req = PlannerRequest(numSlots: sc.slots, topology: topology, numExpertGroups: config.numGroups)
        let old = try Planner.plan(loads: trace.summed(steps: 0..<q), request: req)
        let newLoads = trace.summed(steps: q..<(2 * q))
        let scratch = try Planner.plan(loads: newLoads, request: req)
        let aware = try Planner.plan(loads: newLoads, request: req, current: old)
        let aligned = try zip(scratch, old).map { try $0.aligned(to: $1, topology: topology) }
        let moves = { (a: [Placement], b: [Placement]) in zip(a, b).reduce(0) { $0 + $1.0.moves(to: $1.1) } }
        let ms = moves(old, scratch), ma = moves(old, aware), mal = moves(old, aligned)
        let rs = try PlacementEvaluator.evaluate(placements: scratch, steps: evalSteps, split: .balanced).mean
        let ra = try PlacementEvaluator.evaluate(placements: aware, steps: evalSteps, split: .balanced).mean
        return Replan(
            scenario: sc.name, fromScratchMoves: ms, fromScratchAlignedMoves: mal, migrationAwareMoves: ma,
            movesRatio: Double(ma) / Double(max(ms, 1)), alignedMovesRatio: Double(ma) / Double(max(mal, 1)),
            fromScratchRealized: rs, migrationAwareRealized: ra, totalSlots: sc.slots * config.numMoELayers)
    }
}
