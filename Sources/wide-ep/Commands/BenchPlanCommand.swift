import ArgumentParser
import Dispatch
import Foundation
import WideEPCore
import WideEPWorkload

/// `wide-ep bench plan`: planner time for every policy side by side, plus the per-layer ReplicaSplit time.
struct BenchPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Time every planner policy on one set of loads (real DeepSeek-R1 loads or generated ones).",
        discussion: """
            Loads come from --stats-json (a JSON file with "expert_load" [layers][experts] or \
            [steps][layers][experts], e.g. /work/shared/data/deepseek-r1-expert-load/*.json) or, without it, from \
            the traffic generator. Times are the median over --repeat runs of planning all layers on one thread.
            """)

    @Option(help: "MoE layers for generated loads.")
    var layers: Int = 58
    @Option(help: "Experts per layer for generated loads.")
    var experts: Int = 256
    @Option(help: "Total slots S (a multiple of --ep-size).")
    var slots: Int = 288
    @Option(name: .customLong("ep-size"), help: "EP ranks R.")
    var epSize: Int = 32
    @Option(help: "Nodes (ranks per node = R / N).")
    var nodes: Int = 4
    @Option(help: "Expert groups for the deepseek policy (n_group).")
    var groups: Int = 8
    @Option(help: "Timed repetitions (median reported).")
    var `repeat`: Int = 20
    @Option(name: .customLong("stats-json"), help: "Read loads from this JSON stats file instead of generating them.")
    var statsJSON: String?
    @Option(help: "Seed for generated loads.")
    var seed: UInt64 = 1
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// One policy's timing.
    struct Row: Codable {
        var policy: String
        var medianMs: Double
        var minMs: Double
        var ratioToBalanced: Double
        var predictedImbalanceMean: Double
        var predictedImbalanceMax: Double
    }

    /// The whole result.
    struct Result: Codable {
        var source: String
        var layers: Int
        var experts: Int
        var slots: Int
        var epSize: Int
        var nodes: Int
        var repeats: Int
        var rows: [Row]
        var splitEvenMicrosPerLayer: Double
        var splitBalancedMicrosPerLayer: Double
        var migrationAwareMs: Double
    }

    func validate() throws {
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be >= 1, got \(`repeat`)") }
        guard layers >= 1 && experts >= 1 else { throw ValidationError("--layers and --experts must be >= 1") }
    }

    func run() throws {
        let (loads, source) = try statsJSON.map { (try Self.readLoads(path: $0), $0) }
            ?? (try generatedLoads(), "generated (seed \(seed))")
        let e = loads[0].count
        let topo = try Topology(numRanks: epSize, numNodes: nodes)
        var policies: [PlannerPolicy] = [.greedy, .deepseek, .balanced]
        if slots == e { policies.insert(.none, at: 0) }
        var rows: [Row] = []
        var balancedMedian = 0.0
        var results: [PlannerPolicy: [Placement]] = [:]
        for policy in policies {
            let req = PlannerRequest(numSlots: slots, topology: topo, policy: policy, numExpertGroups: groups)
            var plan: [Placement] = []
            let times = try Self.time(repeats: `repeat`) { plan = try Planner.plan(loads: loads, request: req) }
            results[policy] = plan
            let identity = try (0..<loads.count).map { _ in try Self.roundRobin(experts: e, slots: slots, ranks: epSize) }
            let summary = try PlanSummary.summarize(loads: loads, before: identity, after: plan)
            if policy == .balanced { balancedMedian = times.median }
            rows.append(Row(
                policy: policy.rawValue, medianMs: times.median * 1e3, minMs: times.min * 1e3, ratioToBalanced: 0,
                predictedImbalanceMean: summary.meanImbalanceAfter, predictedImbalanceMax: summary.maxImbalanceAfter))
        }
        for i in rows.indices { rows[i].ratioToBalanced = rows[i].medianMs / (balancedMedian * 1e3) }
        let (evenUs, balancedUs) = try splitTimes(loads: loads, plan: results[.balanced]!)
        // Migration-aware re-planning from the balanced plan after a drift of the loads.
        var rng = SplitMix64(seed: seed &+ 7)
        let drifted = loads.map { $0.map { $0 * (0.7 + 0.6 * rng.unitDouble()) } }
        let req = PlannerRequest(numSlots: slots, topology: topo, numExpertGroups: groups)
        let current = results[.balanced]!
        let migration = try Self.time(repeats: max(1, `repeat` / 4)) {
            _ = try Planner.plan(loads: drifted, request: req, current: current)
        }
        let result = Result(
            source: source, layers: loads.count, experts: e, slots: slots, epSize: epSize, nodes: nodes,
            repeats: `repeat`, rows: rows, splitEvenMicrosPerLayer: evenUs, splitBalancedMicrosPerLayer: balancedUs,
            migrationAwareMs: migration.median * 1e3)
        if json { try CLIOutput.printJSON(result); return }
        print("loads: \(source), \(loads.count) layers × \(e) experts; \(slots) slots on \(epSize) ranks, \(nodes) nodes; "
            + "median of \(`repeat`) runs, one thread")
        var table = [["policy", "plan all layers (ms)", "min (ms)", "vs balanced", "predicted imbalance mean/max"]]
        for r in rows {
            table.append([
                r.policy, String(format: "%.3f", r.medianMs), String(format: "%.3f", r.minMs),
                String(format: "%.2f×", r.ratioToBalanced),
                String(format: "%.4f / %.4f", r.predictedImbalanceMean, r.predictedImbalanceMax),
            ])
        }
        table.append([
            "balanced, migration-aware", String(format: "%.3f", migration.median * 1e3),
            String(format: "%.3f", migration.min * 1e3), String(format: "%.2f×", migration.median / balancedMedian), "",
        ])
        print(CLIOutput.table(table))
        print(String(format: "split per layer: even %.2f µs, balanced %.2f µs (%.2f× even)", evenUs, balancedUs,
                     balancedUs / max(evenUs, 1e-9)))
    }

    /// Times `body` `repeats` times after one warm-up run; seconds.
    static func time(repeats: Int, _ body: () throws -> Void) throws -> (median: Double, min: Double) {
        try body()
        var samples: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        samples.sort()
        return (samples[samples.count / 2], samples[0])
    }

    /// Median per-layer time of the allocation-free split on one step's counts (the loads scaled to 8192 tokens × 8).
    func splitTimes(loads: [[Double]], plan: [Placement]) throws -> (even: Double, balanced: Double) {
        var scratch = ReplicaSplit.Scratch()
        let counts: [[Int32]] = loads.map { row in
            let total = max(row.reduce(0, +), 1)
            return row.map { Int32(($0 / total * 65536).rounded()) }
        }
        var quotas = [Int32](repeating: 0, count: slots)
        func run(_ policy: SplitPolicy) throws -> Double {
            let t = try Self.time(repeats: `repeat`) {
                quotas.withUnsafeMutableBufferPointer { q in
                    for l in 0..<plan.count {
                        counts[l].withUnsafeBufferPointer { c in
                            ReplicaSplit.quotas(expertCounts: c, placement: plan[l], policy: policy, scratch: &scratch, into: q)
                        }
                    }
                }
            }
            return t.median * 1e6 / Double(plan.count)
        }
        return (try run(.even), try run(.balanced))
    }

    /// A slot table that cycles through the experts, for the "before" column of the predicted imbalance.
    static func roundRobin(experts: Int, slots: Int, ranks: Int) throws -> Placement {
        try Placement(slotExpert: (0..<slots).map { Int32($0 % experts) }, numExperts: experts, numRanks: ranks,
                      allowSameRankReplicas: true)
    }

    /// Loads summed over 50 generated steps of `--layers` × `--experts` traffic (skew 0.8, no drift).
    func generatedLoads() throws -> [[Double]] {
        var config = MoEConfig.deepseekV3
        config.numMoELayers = layers
        config.numExperts = experts
        config.numGroups = experts % groups == 0 ? groups : 1
        config.topKGroup = min(config.topKGroup, config.numGroups)
        config.topK = min(config.topK, experts)
        let gen = try TrafficGenerator(
            config: config, options: TrafficOptions(steps: 50, tokensPerStep: 8192, seed: seed, drift: 0))
        return gen.generate().summed(steps: 0..<50)
    }

    /// Reads "expert_load" from a JSON stats file: [layers][experts], or [steps][layers][experts] summed over steps.
    static func readLoads(path: String) throws -> [[Double]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read \(path)")
        }
        let object = try? JSONSerialization.jsonObject(with: data)
        guard let dict = object as? [String: Any], let raw = dict["expert_load"] as? [Any], !raw.isEmpty else {
            throw ValidationError("\(path): expected a JSON object with a non-empty \"expert_load\" array")
        }
        func row(_ x: Any, _ where_: String) throws -> [Double] {
            guard let a = x as? [Any], !a.isEmpty else { throw ValidationError("\(path): \(where_) is not an array of numbers") }
            return try a.enumerated().map { i, v in
                guard let n = v as? NSNumber, n.doubleValue.isFinite, n.doubleValue >= 0 else {
                    throw ValidationError("\(path): \(where_)[\(i)] is not a finite number >= 0")
                }
                return n.doubleValue
            }
        }
        if let first = raw.first as? [Any], first.first is [Any] {
            var sum: [[Double]]? = nil
            for (t, step) in raw.enumerated() {
                guard let layers = step as? [Any] else { throw ValidationError("\(path): expert_load[\(t)] is not an array") }
                let m = try layers.enumerated().map { try row($1, "expert_load[\(t)][\($0)]") }
                if let s = sum {
                    guard s.count == m.count && zip(s, m).allSatisfy({ $0.count == $1.count }) else {
                        throw ValidationError("\(path): step \(t) has a different shape than step 0")
                    }
                    sum = zip(s, m).map { zip($0, $1).map(+) }
                } else { sum = m }
            }
            return sum!
        }
        let rows = try raw.enumerated().map { try row($1, "expert_load[\($0)]") }
        guard rows.allSatisfy({ $0.count == rows[0].count }) else {
            throw ValidationError("\(path): expert_load rows have different lengths")
        }
        return rows
    }
}

