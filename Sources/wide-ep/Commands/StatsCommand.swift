import ArgumentParser
import Foundation
import WideEPCore
import WideEPWorkload

/// `wide-ep stats FILE`: per-layer skew, hottest experts and the imbalance of no balancing at an EP size.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Summarize an expert-load stats file: skew, hottest experts, imbalance without balancing.",
        discussion: """
            FILE is a .safetensors or .json stats file with expert_load [layers, experts] or \
            [iterations, layers, experts]. Imbalance is (max - mean)/mean of the rank loads with experts placed \
            contiguously (expert e on rank e / (E/R)) and no replicas; balancedness is mean/max.
            """)

    @Argument(help: "Stats file (.safetensors or .json).")
    var file: String

    @Option(name: .customLong("ep-size"), help: "EP ranks to compute the imbalance at (default: the largest of 1...32 dividing the expert count).")
    var epSize: Int?

    @Option(name: .customLong("steps"), help: "Summarize only steps START:END (half-open) of a per-step file.")
    var stepRange: String?

    @Option(help: "Hottest experts to list per layer.")
    var top: Int = 5

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    func validate() throws {
        if let r = epSize, r < 1 { throw ValidationError("--ep-size must be >= 1, got \(r)") }
        if top < 1 { throw ValidationError("--top must be >= 1, got \(top)") }
    }

    func run() throws {
        var stats = try StatsFile.load(path: file)
        if let r = stepRange { stats = try stats.steps(try PlanCommand.parseRange(r)) }
        let r = epSize ?? StatsSummary.defaultEPSize(numExperts: stats.numExperts)
        guard stats.numExperts % r == 0 else {
            throw ValidationError(
                "--ep-size \(r) does not divide the expert count \(stats.numExperts) of \(file); the unbalanced "
                    + "placement needs E / R experts per rank")
        }
        let s = try StatsSummary.summarize(stats, epSize: r, top: top)
        if json {
            try CLIOutput.printJSON(Output(file: file, metadata: stats.metadata, summary: s))
            return
        }
        let steps = s.numSteps.map { "\($0) steps" } ?? "totals only (no per-step axis)"
        print("\(file): \(s.numLayers) layers × \(s.numExperts) experts, \(steps)"
            + (stats.metadata.model.map { ", model \($0.count > 60 ? $0.prefix(57) + "..." : $0)" } ?? ""))
        var rows = [["layer", "tokens", "hottest/mean", "cv", "imbalance@EP\(r)", "balancedness", "hottest experts (×mean)"]]
        for l in s.layers {
            rows.append([
                "\(l.layer)", Self.count(l.tokens), String(format: "%.2f", l.hottestRatio), String(format: "%.2f", l.cv),
                String(format: "%.3f", l.imbalance), String(format: "%.3f", l.balancedness),
                l.hottest.map { "\($0.expert) (\(String(format: "%.1f", $0.ratio)))" }.joined(separator: ", "),
            ])
        }
        print(CLIOutput.table(rows))
        print(String(format: "no balancing at EP%d: mean imbalance %.3f, max %.3f, balancedness %.3f; hottest expert %.1f–%.1f× the mean",
                     r, s.meanImbalance, s.maxImbalance, s.meanBalancedness, s.hottestRatioRange[0], s.hottestRatioRange[1]))
        if let p = s.perStepImbalance {
            print(String(format: "per step (layers × steps): mean imbalance %.3f, p99 %.3f, balancedness %.3f",
                         p.mean, p.p99, p.balancedness))
        }
    }

    /// Token counts as integers when they are whole, else with two decimals.
    static func count(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(format: "%.2f", x)
    }

    struct Output: Encodable {
        var file: String
        var metadata: StatsMetadata
        var summary: StatsSummary
    }
}
