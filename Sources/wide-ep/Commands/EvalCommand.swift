import ArgumentParser
import Foundation
import WideEPCore
import WideEPWorkload

/// `wide-ep eval`: realized imbalance of a placement file on a stats file's per-step counts (DESIGN.md §8).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Realized imbalance of a placement on the per-step counts of a stats file.",
        discussion: """
            For every layer and step the step's counts are split over the replicas (--split) and summed per rank; \
            the sample is (max - mean)/mean of the rank loads. Reports the mean and p99 over layers × steps and the \
            balancedness (mean/max). Judge a placement on steps after the ones it was planned from (--steps). A file \
            without a per-step axis is evaluated as one step of its totals.
            """)

    @Option(help: "Placement YAML (TensorRT-LLM load_balancer format).")
    var placement: String

    @Option(help: "Stats file (.safetensors or .json) with expert_load.")
    var stats: String

    @Option(name: .customLong("ep-size"), help: "EP ranks (default: the ep_size recorded in the placement file).")
    var epSize: Int?

    @Option(help: "Replica split: even (round-robin, TensorRT-LLM) or balanced (per-step quotas minimising the max rank load).")
    var split: SplitPolicy = .balanced

    @Option(name: .customLong("steps"), help: "Evaluate only steps START:END (half-open) of a per-step file.")
    var stepRange: String?

    @Flag(name: .customLong("allow-same-rank"), help: "Accept placements with two replicas of one expert on one rank.")
    var allowSameRank = false

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    func validate() throws {
        if let r = epSize, r < 1 { throw ValidationError("--ep-size must be >= 1, got \(r)") }
    }

    func run() throws {
        var file = try StatsFile.load(path: stats)
        if let r = stepRange { file = try file.steps(try PlanCommand.parseRange(r)) }
        let p = try PlacementFile.load(
            path: placement, numRanks: epSize, numExperts: file.numExperts, allowSameRankReplicas: allowSameRank)
        guard p.numLayers == file.numLayers else {
            throw ValidationError("\(placement) has \(p.numLayers) layers but \(stats) has \(file.numLayers)")
        }
        let steps: [[[Double]]]
        if let s = file.perStep {
            steps = s
        } else {
            CLIOutput.progress("note: \(stats) has no per-step axis; evaluating its totals as one step")
            steps = [file.totals]
        }
        // Evaluate in chunks of steps so long traces report progress.
        let start = Date()
        var lastReport = start
        var perLayer = [ImbalanceSummary](repeating: ImbalanceSummary(), count: p.numLayers)
        let chunk = max(1, 2000 / p.numLayers)
        for lo in stride(from: 0, to: steps.count, by: chunk) {
            let part = try PlacementEvaluator.evaluateLayers(
                placements: p.placements, steps: Array(steps[lo..<min(steps.count, lo + chunk)]), split: split)
            for l in 0..<p.numLayers { perLayer[l].merge(part[l]) }
            if Date().timeIntervalSince(lastReport) >= 1 {
                CLIOutput.progress("eval: step \(min(steps.count, lo + chunk))/\(steps.count)")
                lastReport = Date()
            }
        }
        var total = ImbalanceSummary()
        for s in perLayer { total.merge(s) }
        let result = Output(
            placement: placement, stats: stats, split: split.rawValue, epSize: p.numRanks, numSlots: p.numSlots,
            steps: steps.count, perStepAxis: file.perStep != nil, meanImbalance: total.mean, p99Imbalance: total.p99,
            balancedness: total.balancedness,
            layers: zip(p.layerIds, perLayer).map {
                Output.Row(layer: $0, meanImbalance: $1.mean, p99Imbalance: $1.p99, balancedness: $1.balancedness)
            },
            seconds: Date().timeIntervalSince(start))
        if json {
            try CLIOutput.printJSON(result)
            return
        }
        var rows = [["layer", "mean imbalance", "p99", "balancedness"]]
        for r in result.layers {
            rows.append(["\(r.layer)", String(format: "%.3f", r.meanImbalance), String(format: "%.3f", r.p99Imbalance),
                         String(format: "%.3f", r.balancedness)])
        }
        print(CLIOutput.table(rows))
        print("\(placement) on \(stats) (\(steps.count) step\(steps.count == 1 ? "" : "s"), EP\(p.numRanks), "
            + "\(p.numSlots) slots, split \(split.rawValue)): realized imbalance mean "
            + String(format: "%.4f, p99 %.4f, balancedness %.4f", total.mean, total.p99, total.balancedness))
    }

    struct Output: Encodable {
        struct Row: Encodable {
            var layer: Int
            var meanImbalance: Double, p99Imbalance: Double, balancedness: Double
        }
        var placement: String, stats: String, split: String
        var epSize: Int, numSlots: Int, steps: Int
        var perStepAxis: Bool
        var meanImbalance: Double, p99Imbalance: Double, balancedness: Double
        var layers: [Row]
        var seconds: Double
    }
}
