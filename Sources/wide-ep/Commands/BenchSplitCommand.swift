import ArgumentParser
import Foundation
import CUDADriver
import WideEPCUDA
import WideEPCore
import WideEPWorkload

/// `wide-ep bench split`: the GPU balanced replica split per layer next to Core's CPU split and the previous GPU
/// kernels, on planned placements and drifted batches, with the exactness checks.
struct BenchSplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split",
        abstract: "Time the GPU balanced replica split per layer against Core's CPU split (and check it matches).",
        discussion: """
            Each layer is planned (balanced planner) on --stats-json loads (or generated ones), then --samples \
            batches of --tokens × --top-k pairs are drawn from the same loads scaled by a random drift of ±30% per \
            expert (or from --batch-json). The GPU quotas are checked against the CPU twin (identical), conservation, \
            the max rank load against Core's (≤ 1.01 on every batch; max and mean printed) and, with Core's stop, \
            identity with Core; then the µs per layer of the kernel (CUDA graph of one launch per layer, and \
            back-to-back launches), the same kernel with Core's stop, the previous GPU kernels (level-parallel block, \
            serial) and Core's CPU split on this host; \
            the graphs again while a load kernel keeps 64 SMs busy (the clocks of a serving card); and the kernel's own \
            SM cycles and clock (clock64 / globaltimer).
            """)

    @Option(name: .customLong("stats-json"), help: "Plan on the \"expert_load\" [layers][experts] of this JSON file.")
    var statsJSON: String?
    @Option(name: .customLong("batch-json"), help: "Draw the batches from this JSON file's loads instead (same shape).")
    var batchJSON: String?
    @Option(name: .customLong("ep-size"), help: "EP ranks R.")
    var epSize: Int = 32
    @Option(help: "Total slots S (a multiple of --ep-size, at least the expert count).")
    var slots: Int = 288
    @Option(help: "Nodes (ranks per node = R / N).")
    var nodes: Int = 4
    @Option(help: "Tokens per batch.")
    var tokens: Int = 4096
    @Option(name: .customLong("top-k"), help: "Experts per token.")
    var topK: Int = 8
    @Option(help: "Batches per layer.")
    var samples: Int = 2
    @Option(help: "Layers of generated loads (without --stats-json).")
    var layers: Int = 58
    @Option(help: "Timed repetitions (median reported).")
    var `repeat`: Int = 11
    @Option(help: "Seed of the drift, the batches and the generated loads.")
    var seed: UInt64 = 1
    @Option(name: .customLong("stop-shift"),
            help: "Certified stop: max rank load within 1 + 2^-N of the optimum (0...30); -1: Core's stop.")
    var stopShift: Int = 7
    @Option(help: "CUDA device ordinal.")
    var gpu: Int = 0
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// The whole result.
    struct Result: Codable {
        var source: String
        var device: String
        var layers: Int
        var epSize: Int
        var slots: Int
        var tokens: Int
        var stopShift: Int
        var checks: SplitBenchmark.Checks
        var timing: SplitBenchmark.Timing
        var targetMicros: Double
    }

    func validate() throws {
        guard epSize >= 1 && slots >= 1 && slots % epSize == 0 else {
            throw ValidationError("--slots (\(slots)) must be a positive multiple of --ep-size (\(epSize))")
        }
        guard tokens >= 1 && topK >= 1 && samples >= 1 && `repeat` >= 1 && layers >= 1 else {
            throw ValidationError("--tokens, --top-k, --samples, --repeat and --layers must be >= 1")
        }
        guard (-1...30).contains(stopShift) else {
            throw ValidationError("--stop-shift (\(stopShift)) must be in -1...30 (-1: Core's stop)")
        }
    }

    func run() throws {
        guard CUDA.isAvailable else {
            throw ValidationError("CUDA is unavailable on this machine (\(CUDA.unavailableReason ?? "no driver")); "
                                  + "run `wide-ep doctor` for details")
        }
        let loads = try statsJSON.map { try BenchPlanCommand.readLoads(path: $0) } ?? (try generatedLoads())
        let batchLoads = try batchJSON.map { try BenchPlanCommand.readLoads(path: $0) }
        if let b = batchLoads, b.count != loads.count || b[0].count != loads[0].count {
            throw ValidationError("--batch-json has \(b.count) layers × \(b[0].count) experts; the plan loads have "
                                  + "\(loads.count) × \(loads[0].count)")
        }
        let e = loads[0].count
        guard slots >= e else { throw ValidationError("--slots (\(slots)) must be at least the expert count (\(e))") }
        let topo = try Topology(numRanks: epSize, numNodes: nodes)
        var rng = SplitMix64(seed: seed)
        var cases: [SplitBenchmark.Case] = []
        CLIOutput.progress("bench split: planning \(loads.count) layers (E=\(e), \(slots) slots on \(epSize) ranks)")
        for (l, row) in loads.enumerated() {
            let pl = try Planner.planLayer(loads: row, request: PlannerRequest(numSlots: slots, topology: topo), layer: l)
            for _ in 0..<samples {
                let profile = batchLoads?[l] ?? row.map { $0 * (0.7 + 0.6 * rng.unitDouble()) }
                let counts = SplitCases.sampleCounts(profile: profile, pairs: tokens * topK, rng: &rng)
                cases.append(SplitBenchmark.Case(placement: pl, counts: counts))
            }
        }
        let device = try GPU(ordinal: gpu)
        CLIOutput.progress("bench split: \(cases.count) batches on \(device.name): checking, then timing")
        let stop: SplitStop = stopShift < 0 ? .core : .certified(shift: stopShift)
        let bench = try SplitBenchmark(gpu: device, cases: cases, stop: stop)
        let checks = try bench.check()
        let timing = try bench.time(repeats: `repeat`)
        let result = Result(
            source: statsJSON ?? "generated (seed \(seed))", device: device.name, layers: loads.count, epSize: epSize,
            slots: slots, tokens: tokens, stopShift: stopShift, checks: checks, timing: timing, targetMicros: 10)
        if json { try CLIOutput.printJSON(result) } else { print(Self.report(result)) }
        if let m = checks.firstMismatch { CLIOutput.progress("bench split: first mismatch: \(m)") }
        if checks.conservationErrors + checks.twinMismatches + checks.exactCoreMismatches + checks.levelsMismatches > 0
            || !(checks.worstPeakRatio <= 1.01)
        {
            throw ExitCode(1)
        }
    }

    /// The table and the check line of `result`.
    static func report(_ r: Result) -> String {
        let t = r.timing, c = r.checks
        var table = [["split", "µs/layer", "CPU Core / this", "vs 10 µs target"]]
        func row(_ name: String, _ us: Double) {
            table.append([name, String(format: "%.2f", us), String(format: "%.2f×", t.cpuMicros / us),
                          us <= r.targetMicros ? "met" : "missed"])
        }
        let stop = r.stopShift < 0 ? "Core's stop" : "certified 2^-\(r.stopShift)"
        row("GPU one-warp, \(stop) (CUDA graph)", t.gpuGraphMicros)
        row("GPU one-warp, \(stop) (launches)", t.gpuEagerMicros)
        row("GPU one-warp, Core's stop (CUDA graph)", t.coreStopGraphMicros)
        row("GPU level-parallel, previous (CUDA graph)", t.levelsGraphMicros)
        row("GPU serial, first (CUDA graph)", t.serialGraphMicros)
        row("GPU one-warp, loaded card (graph)", t.gpuGraphLoadedMicros)
        row("GPU level-parallel, loaded card (graph)", t.levelsGraphLoadedMicros)
        row("GPU serial, loaded card (graph)", t.serialGraphLoadedMicros)
        row("CPU Core, one thread", t.cpuMicros)
        row("floor: 1-block kernel, 1 load + 1 store (graph)", t.floorGraphMicros)
        func prof(_ p: SplitBenchmark.Profile) -> String {
            guard p.launches > 0 else { return "not recorded (the counters read 0)" }
            return String(format: "%.0f cycles (prologue %.0f) at %.0f MHz, %.2f µs by the global timer; %.1f passes × "
                          + "%.1f levels, %.0f fallbacks", p.totalCycles, p.prologueCycles, p.clockMHz, p.nanos / 1000,
                          p.passes, p.levels, p.fallbacks)
        }
        return """
            bench split on \(r.device): \(r.source), \(r.layers) layers, \(c.cases) batches of \(r.tokens) tokens; \
            \(r.slots) slots on \(r.epSize) ranks
            \(CLIOutput.table(table))
            checks: conservation errors \(c.conservationErrors), quotas ≠ twin \(c.twinMismatches), Core's stop ≠ \
            Core \(c.exactCoreMismatches), level-parallel kernel ≠ Core \(c.levelsMismatches), one-warp kernel on \
            \(c.warpCases) of \(c.cases); quotas ≠ Core \(c.coreMismatches) (\(stop))
            max rank load / Core (\(stop)): worst \(String(format: "%.4f", c.worstPeakRatio)) (≤ 1.01), mean \
            \(String(format: "%.5f", c.meanPeakRatio)); fallbacks to Core's schedule \(c.fallbacks) of \(c.cases)
            schedule: \(String(format: "%.1f", c.meanSteps)) water-fills, \(String(format: "%.1f", c.meanLevels)) \
            levels per pass, \(String(format: "%.2f", c.meanPasses)) passes, \(String(format: "%.1f", c.meanRounds)) \
            level rounds (means per batch)
            kernel profile (mean per launch): idle card \(prof(t.profile)); loaded card \(prof(t.loadedProfile))
            """
    }

    /// Loads summed over 50 generated steps of --layers × 256 experts of DeepSeek-V3 traffic (skew 0.8, no drift).
    func generatedLoads() throws -> [[Double]] {
        var config = MoEConfig.deepseekV3
        config.numMoELayers = layers
        let gen = try TrafficGenerator(
            config: config, options: TrafficOptions(steps: 50, tokensPerStep: 8192, seed: seed, drift: 0))
        return gen.generate().summed(steps: 0..<50)
    }
}
