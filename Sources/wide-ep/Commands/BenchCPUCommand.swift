import ArgumentParser
import Foundation
import WideEPCPU
import WideEPCore
import WideEPRuntime

/// `wide-ep bench cpu`: CPU MoE layer throughput per EP size with the phase split, next to the dense single-rank
/// reference measured in the same run.
struct BenchCPUCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cpu",
        abstract: "Time one MoE layer on the CPU backend per EP size (route/dispatch/FFN/combine) against the dense reference.")

    @OptionGroup var model: ModelOptions

    @Option(name: .customLong("ep-sizes"), help: "Comma-separated EP sizes.")
    var epSizes: String = "1,2,4,8"

    @Option(help: "Tokens per forward over all ranks.")
    var tokens: Int = 512

    @Option(help: "Timed forwards per EP size.")
    var repeats: Int = 10

    @Option(help: "Compute threads in total (0 = all cores).")
    var threads: Int = 0

    @Option(help: "Seed of weights and inputs.")
    var seed: UInt64 = 7

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    struct Row: Encodable {
        let epSize: Int
        let tokensPerSecond: Double
        let referenceTokensPerSecond: Double
        let speedup: Double
        let routeShare: Double, dispatchShare: Double, ffnShare: Double, combineShare: Double
        let maxRelativeError: Double
    }

    func run() throws {
        let sizes = try epSizes.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n >= 1 else {
                throw ValidationError("--ep-sizes: '\(s)' is not a positive integer (e.g. 1,2,4,8)")
            }
            return n
        }
        guard tokens >= 1 else { throw ValidationError("--tokens must be >= 1, got \(tokens)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1, got \(repeats)") }
        var config = try model.resolve(fallback: .deepseekV3Mini)
        config.numMoELayers = 1
        for r in sizes where config.numExperts % r != 0 {
            throw ValidationError("EP size \(r) does not divide the expert count \(config.numExperts)")
        }
        let weights = MoELayerWeights.random(config: config, seed: seed)
        var g = SeededGenerator(seed: seed &+ 1)
        let h = config.hiddenSize
        let input = (0..<(tokens * h)).map { _ in g.symmetric(1.7320508) }

        // Baseline: the dense single-rank reference on the same tokens.
        CLIOutput.progress("dense reference: \(tokens) tokens")
        var t0 = Date()
        let reference = DenseMoEReference.forward(weights: weights, hidden: input, tokens: tokens)
        let refSeconds = Date().timeIntervalSince(t0)
        let refRate = Double(tokens) / refSeconds

        var rows: [Row] = []
        for r in sizes {
            CLIOutput.progress("EP\(r): \(repeats) forwards of \(tokens) tokens")
            let backend = try CPUBackend(options: BackendOptions(numRanks: r, workerThreads: threads))
            let placement = try Placement.identity(numExperts: config.numExperts, numRanks: r)
            let layers = try (0..<r).map {
                try MoELayer(weights: weights, placement: placement, rank: $0, kernels: backend.kernels(rank: $0),
                             comm: backend.communicator(rank: $0))
            }
            let per = (0..<r).map { tokens / r + ($0 < tokens % r ? 1 : 0) }
            let starts = per.indices.map { per[..<$0].reduce(0, +) }
            let box = BenchBox(ranks: r)
            let kernelsX = try (0..<r).map { rank -> (HostBuffer, HostBuffer) in
                let k = backend.kernels(rank: rank)
                let x = try k.allocate(.float32, count: per[rank] * h), y = try k.allocate(.float32, count: per[rank] * h)
                try input[(starts[rank] * h)..<((starts[rank] + per[rank]) * h)].withUnsafeBytes {
                    try k.upload($0, to: x, offset: 0)
                }
                return (x, y)
            }
            var times = PhaseTimes()
            var seconds = 0.0
            for rep in -1..<repeats {
                t0 = Date()
                try backend.runRanks { rank in
                    let info = try layers[rank].forward(
                        hidden: kernelsX[rank].0, tokens: per[rank], placement: placement, output: kernelsX[rank].1)
                    box.set(rank, info.times)
                }
                // The first forward warms up allocations and is not timed.
                if rep >= 0 {
                    seconds += Date().timeIntervalSince(t0)
                    let all = box.values
                    times.route += all.map(\.route).max()!
                    times.dispatch += all.map(\.dispatch).max()!
                    times.ffn += all.map(\.ffn).max()!
                    times.combine += all.map(\.combine).max()!
                }
            }
            var out: [Float] = []
            for rank in 0..<r {
                var part = [Float](repeating: 0, count: per[rank] * h)
                try part.withUnsafeMutableBytes { try backend.kernels(rank: rank).download(kernelsX[rank].1, offset: 0, into: $0) }
                out += part
            }
            let rate = Double(tokens * repeats) / seconds
            let t = max(times.total, 1e-12)
            rows.append(Row(
                epSize: r, tokensPerSecond: rate, referenceTokensPerSecond: refRate, speedup: rate / refRate,
                routeShare: times.route / t, dispatchShare: times.dispatch / t, ffnShare: times.ffn / t,
                combineShare: times.combine / t, maxRelativeError: MoEMath.relativeError(out, reference)))
        }
        if json {
            try CLIOutput.printJSON(rows)
            return
        }
        var table = [["EP", "tokens/s", "dense reference tokens/s", "ratio", "route", "dispatch", "FFN", "combine", "rel err"]]
        for row in rows {
            table.append([
                "\(row.epSize)", String(format: "%.0f", row.tokensPerSecond),
                String(format: "%.0f", row.referenceTokensPerSecond), String(format: "%.1f×", row.speedup),
                String(format: "%.0f%%", 100 * row.routeShare), String(format: "%.0f%%", 100 * row.dispatchShare),
                String(format: "%.0f%%", 100 * row.ffnShare), String(format: "%.0f%%", 100 * row.combineShare),
                String(format: "%.1e", row.maxRelativeError),
            ])
        }
        print("\(config.name) layer: E=\(config.numExperts) top-\(config.topK) H=\(config.hiddenSize) "
            + "I=\(config.moeIntermediateSize) shared=\(config.numShared), \(tokens) tokens, "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores")
        print(CLIOutput.table(table))
    }
}

/// Per-rank phase times from the rank threads.
final class BenchBox: @unchecked Sendable {
    private var times: [PhaseTimes]
    private let lock = NSLock()
    init(ranks: Int) { times = Array(repeating: PhaseTimes(), count: ranks) }
    func set(_ i: Int, _ t: PhaseTimes) { lock.lock(); times[i] = t; lock.unlock() }
    var values: [PhaseTimes] { lock.lock(); defer { lock.unlock() }; return times }
}
