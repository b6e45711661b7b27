import ArgumentParser
import Foundation
import WideEPCore
import WideEPWorkload

/// `wide-ep trace`: synthetic expert-load traces.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace", abstract: "Generate synthetic per-step expert-load traces.",
        subcommands: [TraceGenerateCommand.self])
}

/// `wide-ep trace generate`: writes per-step counts [steps, layers, experts] as a stats file.
struct TraceGenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write per-step expert counts [steps, layers, experts] with skew, drift and mix shifts.",
        discussion: """
            Each step routes --tokens-per-step tokens to top-k distinct experts in every layer. Popularity is \
            heavy-tailed (--skew), drifts slowly (--drift) and shifts abruptly to the next of --mixes traffic mixes \
            every --shift-every steps. With --from-stats (repeatable) the mixes are real profiles instead: each \
            file's totals is one mix and --skew is an exponent on it (1 keeps the real skew).
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Steps to generate.")
    var steps: Int = 100

    @Option(name: .customLong("tokens-per-step"), help: "Tokens per step (each routed to top-k experts per layer).")
    var tokensPerStep: Int = 8192

    @Option(help: "Heavy-tail strength (log-normal sigma of popularity, 0...4; 0 = uniform).")
    var skew: Double = 0.8

    @Option(help: "Per-step drift of log-popularity (0...1; 0 = static).")
    var drift: Double = 0.02

    @Option(name: .customLong("shift-every"), help: "Steps between abrupt shifts to the next traffic mix (0 = never).")
    var shiftEvery: Int = 0

    @Option(help: "Distinct synthetic traffic mixes (ignored with --from-stats).")
    var mixes: Int = 2

    @Option(help: "Seed of the deterministic generator.")
    var seed: UInt64 = 0

    @Option(name: .customLong("from-stats"), help: "Stats file whose totals are a real traffic profile (repeatable; one mix each).")
    var fromStats: [String] = []

    @Option(help: "Output file: .safetensors (I32 counts) or .json.")
    var output: String

    @Flag(help: "Print a JSON summary instead of text.")
    var json = false

    func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be >= 1, got \(steps)") }
        if tokensPerStep < 1 { throw ValidationError("--tokens-per-step must be >= 1, got \(tokensPerStep)") }
        if !(skew.isFinite && skew >= 0 && skew <= 4) { throw ValidationError("--skew must be in 0...4, got \(skew)") }
        if !(drift.isFinite && drift >= 0 && drift <= 1) { throw ValidationError("--drift must be in 0...1, got \(drift)") }
        if shiftEvery < 0 { throw ValidationError("--shift-every must be >= 0 (0 = never), got \(shiftEvery)") }
        if mixes < 1 { throw ValidationError("--mixes must be >= 1, got \(mixes)") }
    }

    func run() throws {
        let config = try model.resolve()
        let options = TrafficOptions(
            steps: steps, tokensPerStep: tokensPerStep, seed: seed, skew: skew, drift: drift, shiftEvery: shiftEvery,
            numMixes: mixes)
        var generator: TrafficGenerator
        var layerIds: [Int]?
        if fromStats.isEmpty {
            generator = try TrafficGenerator(config: config, options: options)
        } else {
            let profiles = try fromStats.map { try StatsFile.load(path: $0) }
            for (p, path) in zip(profiles, fromStats)
            where p.numLayers != config.numMoELayers || p.numExperts != config.numExperts {
                throw ValidationError(
                    "\(path) has \(p.numLayers) layers × \(p.numExperts) experts but \(config.name) has "
                        + "\(config.numMoELayers) × \(config.numExperts); pick a matching --preset or --set numMoELayers=…")
            }
            layerIds = profiles[0].metadata.layerIds
            generator = try TrafficGenerator(profiles: profiles.map(\.totals), topK: config.topK, options: options)
        }
        // Generate step by step so long traces report progress.
        let start = Date()
        var lastReport = start
        var perStep: [[[Double]]] = []
        perStep.reserveCapacity(steps)
        for t in 0..<steps {
            perStep.append(generator.nextStep())
            let now = Date()
            if now.timeIntervalSince(lastReport) >= 1 {
                CLIOutput.progress("trace: step \(t + 1)/\(steps) (\(String(format: "%.0f", now.timeIntervalSince(start)))s)")
                lastReport = now
            }
        }
        let source = fromStats.isEmpty ? "synthetic" : "profiles " + fromStats.joined(separator: ", ")
        let workload = "wide-ep trace generate: \(source), tokens-per-step \(tokensPerStep), skew \(skew), "
            + "drift \(drift), shift-every \(shiftEvery), mixes \(fromStats.isEmpty ? mixes : fromStats.count), seed \(seed)"
        let stats = try StatsFile(
            perStep: perStep,
            metadata: StatsMetadata(model: config.name, stepRange: 0..<steps, workload: workload, layerIds: layerIds))
        let maxCount = perStep.lazy.flatMap { $0 }.flatMap { $0 }.max() ?? 0
        try stats.save(path: output, dtype: maxCount < Double(Int32.max) ? .i32 : .i64)
        let summary = Output(
            output: output, model: config.name, steps: steps, layers: stats.numLayers, experts: stats.numExperts,
            tokensPerStep: tokensPerStep, topK: config.topK, mixes: fromStats.isEmpty ? mixes : fromStats.count,
            seconds: Date().timeIntervalSince(start))
        if json {
            try CLIOutput.printJSON(summary)
        } else {
            print("wrote \(output): \(steps) steps × \(stats.numLayers) layers × \(stats.numExperts) experts "
                + "(\(config.name), \(tokensPerStep) tokens/step, top-\(config.topK)) in "
                + String(format: "%.2f s", summary.seconds))
        }
    }

    struct Output: Encodable {
        var output: String
        var model: String
        var steps: Int, layers: Int, experts: Int, tokensPerStep: Int, topK: Int, mixes: Int
        var seconds: Double
    }
}
