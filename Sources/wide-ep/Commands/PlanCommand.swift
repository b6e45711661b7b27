import ArgumentParser
import Foundation
import WideEPCore
import WideEPWorkload

/// `wide-ep plan`: plans placements from a stats file and writes a TensorRT-LLM placement YAML.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Plan expert placements (EPLB) from a stats file and write a TensorRT-LLM placement YAML.",
        discussion: """
            Plans from the loads summed over the file's steps (or decayed with --decay). Prints the predicted \
            imbalance per layer before (the --current placement, else experts placed contiguously without replicas) \
            and after, and the slot rewrites (moves) from --current. With --current and policy balanced the plan is \
            migration-aware: close to the from-scratch imbalance with far fewer moves.
            """)

    @Option(help: "Stats file (.safetensors or .json) with expert_load.")
    var stats: String

    @Option(name: .customLong("ep-size"), help: "EP ranks (R).")
    var epSize: Int

    @Option(name: .customLong("num-slots"), help: "Total expert slots per layer (S, a multiple of R, >= E).")
    var numSlots: Int

    @Option(help: "Nodes (NVLink domains); ranks [n·R/N, (n+1)·R/N) share node n.")
    var nodes: Int = 1

    @Option(help: "Planner policy: balanced (WideEP), greedy (TensorRT-LLM), deepseek (DeepSeek EPLB) or none (identity; needs S = E).")
    var policy: PlannerPolicy = .balanced

    @Option(help: "Expert groups for the deepseek policy (default: the model's group count with --preset/--config, else 1).")
    var groups: Int?

    @Option(help: "Current placement YAML to re-plan from (migration-aware); also the 'before' of the report.")
    var current: String?

    @Option(help: "Plan from exponentially decayed loads (newest step weighs 1, each older step × D) instead of sums.")
    var decay: Double?

    @Option(name: .customLong("steps"), help: "Use only steps START:END (half-open) of a per-step file.")
    var stepRange: String?

    @Flag(name: .customLong("allow-same-rank"), help: "Allow two replicas of one expert on one rank.")
    var allowSameRank = false

    @Option(name: .customLong("layer-updates-per-iter"), help: "layer_updates_per_iter written into the YAML (TensorRT-LLM online balancing; 0 = static).")
    var layerUpdatesPerIter: Int = 0

    @OptionGroup var model: ModelOptions

    @Option(help: "Output placement YAML.")
    var output: String

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    func validate() throws {
        if epSize < 1 { throw ValidationError("--ep-size must be >= 1, got \(epSize)") }
        if numSlots < 1 { throw ValidationError("--num-slots must be >= 1, got \(numSlots)") }
        if let d = decay, !(d > 0 && d <= 1) { throw ValidationError("--decay must be in (0, 1], got \(d)") }
        if let g = groups, g < 1 { throw ValidationError("--groups must be >= 1, got \(g)") }
        if layerUpdatesPerIter < 0 { throw ValidationError("--layer-updates-per-iter must be >= 0") }
    }

    func run() throws {
        var file = try StatsFile.load(path: stats)
        if let r = stepRange { file = try file.steps(try Self.parseRange(r)) }
        let config = model.isSpecified ? try model.resolve() : nil
        if let c = config, c.numExperts != file.numExperts {
            throw ValidationError("\(stats) has \(file.numExperts) experts but \(c.name) has \(c.numExperts)")
        }
        var loads = file.totals
        if let d = decay {
            if file.perStep == nil {
                CLIOutput.progress("note: \(stats) has no per-step axis; --decay has no effect, planning from its totals")
            }
            loads = file.decayedTotals(decay: d)
        }
        let request = PlannerRequest(
            numSlots: numSlots, topology: try Topology(numRanks: epSize, numNodes: nodes), policy: policy,
            numExpertGroups: groups ?? config?.numGroups ?? 1, allowSameRankReplicas: allowSameRank)
        let layerIds = file.metadata.layerIds ?? Array(0..<file.numLayers)
        var currentFile: PlacementFile?
        if let current {
            let c = try PlacementFile.load(
                path: current, numRanks: epSize, numExperts: file.numExperts, allowSameRankReplicas: allowSameRank)
            guard c.numLayers == file.numLayers else {
                throw ValidationError("\(current) has \(c.numLayers) layers but \(stats) has \(file.numLayers)")
            }
            guard c.numSlots == numSlots else {
                throw ValidationError("\(current) has \(c.numSlots) slots per layer but --num-slots is \(numSlots)")
            }
            currentFile = c
        }
        let start = Date()
        let planned = try Planner.plan(loads: loads, request: request, current: currentFile?.placements)
        let seconds = Date().timeIntervalSince(start)
        // Keys: the current file's when re-planning (they name the same layers), else the stats file's layer ids.
        let ids = currentFile?.layerIds ?? layerIds
        let out = try PlacementFile(placements: planned, layerIds: ids, layerUpdatesPerIter: layerUpdatesPerIter)
        let report = try Self.report(loads: loads, after: planned, current: currentFile?.placements, epSize: epSize)
        try out.save(path: output)
        let result = Output(
            output: output, stats: stats, policy: policy.rawValue, epSize: epSize, numSlots: numSlots, nodes: nodes,
            groups: request.numExpertGroups, decay: decay, planSeconds: seconds, layers: zip(ids, report.rows).map {
                Output.Row(layer: $0, before: $1.before, after: $1.after, balancednessAfter: $1.balancednessAfter, moves: $1.moves)
            },
            meanImbalanceBefore: report.meanBefore, meanImbalanceAfter: report.meanAfter,
            maxImbalanceAfter: report.rows.map(\.after).max() ?? 0, totalMoves: report.totalMoves,
            bytesMoved: report.totalMoves.flatMap { m in config.map { m * $0.expertBytes() } })
        if json {
            try CLIOutput.printJSON(result)
            return
        }
        var rows = [["layer", "imbalance before", "after", "balancedness after", "moves"]]
        for r in result.layers {
            rows.append([
                "\(r.layer)", r.before.map { String(format: "%.3f", $0) } ?? "n/a", String(format: "%.3f", r.after),
                String(format: "%.3f", r.balancednessAfter), r.moves.map(String.init) ?? "-",
            ])
        }
        print(CLIOutput.table(rows))
        let before = result.meanImbalanceBefore.map { String(format: "%.3f", $0) } ?? "n/a"
        print("policy \(policy.rawValue), EP\(epSize), \(numSlots) slots, \(nodes) node(s): mean predicted imbalance "
            + "\(before) → \(String(format: "%.3f", result.meanImbalanceAfter)) (max \(String(format: "%.3f", result.maxImbalanceAfter))), "
            + "planned \(file.numLayers) layers in \(String(format: "%.1f", seconds * 1000)) ms")
        if let m = result.totalMoves {
            print("moves: \(m) slot rewrites" + (result.bytesMoved.map { " (\(Self.bytes($0)) of expert weights at 2 bytes/param)" } ?? ""))
        } else {
            print("moves: not counted (no --current placement; every slot is loaded at start)")
        }
        print("wrote \(output)")
    }

    /// Per-layer before/after imbalance on `loads`; moves only when a current placement (or an identity with the same
    /// slot count) is the before.
    static func report(loads: [[Double]], after: [Placement], current: [Placement]?, epSize: Int) throws
        -> (rows: [(before: Double?, after: Double, balancednessAfter: Double, moves: Int?)], meanBefore: Double?,
            meanAfter: Double, totalMoves: Int?)
    {
        let e = loads[0].count
        let identity = e % epSize == 0 ? try Placement.identity(numExperts: e, numRanks: epSize) : nil
        let before: [Placement]? = current ?? identity.map { Array(repeating: $0, count: loads.count) }
        var rows: [(before: Double?, after: Double, balancednessAfter: Double, moves: Int?)] = []
        if let before, before[0].numSlots == after[0].numSlots {
            let s = try PlanSummary.summarize(loads: loads, before: before, after: after)
            rows = s.layers.map { ($0.imbalanceBefore, $0.imbalanceAfter, $0.balancednessAfter, $0.moves) }
        } else {
            for (l, p) in after.enumerated() {
                let a = p.rankLoads(expertLoads: loads[l])
                let b = before.map { Imbalance.ratio($0[l].rankLoads(expertLoads: loads[l])) }
                rows.append((b, Imbalance.ratio(a), Imbalance.balancedness(a), nil))
            }
        }
        let n = Double(rows.count)
        let bs = rows.compactMap(\.before)
        return (rows, bs.count == rows.count ? bs.reduce(0, +) / n : nil, rows.map(\.after).reduce(0, +) / n,
                rows.allSatisfy { $0.moves != nil } ? rows.reduce(0) { $0 + $1.moves! } : nil)
    }

    /// Parses START:END into a half-open range.
    static func parseRange(_ s: String) throws -> Range<Int> {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, a < b else {
            throw ValidationError("--steps expects START:END with 0 <= START < END, got '\(s)'")
        }
        return a..<b
    }

    /// Bytes in KiB/MiB/GiB.
    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var x = Double(n), i = 0
        while x >= 1024 && i < units.count - 1 { x /= 1024; i += 1 }
        return String(format: i == 0 ? "%.0f %@" : "%.1f %@", x, units[i])
    }

    struct Output: Encodable {
        struct Row: Encodable {
            var layer: Int
            var before: Double?
            var after: Double
            var balancednessAfter: Double
            var moves: Int?
        }
        var output: String, stats: String, policy: String
        var epSize: Int, numSlots: Int, nodes: Int, groups: Int
        var decay: Double?
        var planSeconds: Double
        var layers: [Row]
        var meanImbalanceBefore: Double?
        var meanImbalanceAfter: Double
        var maxImbalanceAfter: Double
        var totalMoves: Int?
        var bytesMoved: Int?
    }
}
