import ArgumentParser
import Foundation
import WideEPCPU
import WideEPCUDA
import WideEPCore
import WideEPRuntime
import WideEPWorkload

extension BalancerMode: ExpressibleByArgument {}

/// `wide-ep run`: serve MoE layers over EP ranks with drifting traffic and (online) EPLB, then summarize.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run MoE layers with expert parallelism on drifting traffic, with online EPLB, and summarize.",
        discussion: """
            With no flags: deepseek-v3-mini (4 MoE layers, 64 experts, top-8) on 8 CPU ranks with 72 slots, \
            skewed drifting traffic and online EPLB. Routing follows the traffic's expert popularity through a \
            per-step router-logit offset; realized imbalance is (max − mean)/mean of the tokens each rank computed, \
            per layer and step.

            One process per rank: `wide-ep launch --nproc-per-node N -- run --ep-size N …` (or torchrun/srun/mpirun). \
            With --device cuda each process drives one GPU (NVLink within a node, else NCCL); with --device cpu the \
            ranks exchange data through the launcher's TCP store (slow; a correctness check without a GPU). Every rank \
            makes the same balancing decisions at the same steps, so the metrics equal the single-process run's; only \
            rank 0 prints.
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Hugging Face checkpoint folder whose MoE layers to serve (instead of random weights).")
    var checkpoint: String?

    @Option(name: [.customLong("ep-size"), .customLong("ranks")], help: "EP ranks (R).")
    var epSize: Int = 8

    @Option(name: .customLong("num-slots"), help: "Expert slots per layer (multiple of R, >= E; default E + R).")
    var numSlots: Int?

    @Option(help: "Steps to run.")
    var steps: Int = 120

    @Option(name: .customLong("tokens-per-step"), help: "Tokens per step over all ranks.")
    var tokensPerStep: Int = 256

    @Option(help: "Balancer: off, static or online.")
    var balancer: BalancerMode = .online

    @Option(help: "Planner policy: none, greedy, deepseek or balanced.")
    var policy: PlannerPolicy = .balanced

    @Option(help: "Replica split per batch: even or balanced.")
    var split: SplitPolicy = .balanced

    @Option(name: .customLong("rebalance-interval"), help: "Steps between online re-plans (also the statistics window).")
    var rebalanceInterval: Int = 5

    @Option(name: .customLong("imbalance-threshold"),
            help: "Re-plan early (online) when a step's mean imbalance exceeds this; inf disables.")
    var imbalanceThreshold: Double = 0.25

    @Option(name: .customLong("layer-updates-per-step"), help: "Layers migrated per step.")
    var layerUpdatesPerStep: Int = 2

    @Option(help: "Initial placement YAML (TensorRT-LLM load_balancer format); static keeps it.")
    var placement: String?

    @Option(help: "Replay a stats file's per-step counts [steps][layers][experts] instead of generated traffic.")
    var trace: String?

    @Option(name: .customLong("dump-stats"), help: "Write the realized per-step expert counts (readable by `wide-ep plan`).")
    var dumpStats: String?

    @Option(name: .customLong("verify-every"), help: "Compare every layer with the dense reference every N steps (0 = off).")
    var verifyEvery: Int = 0

    @Flag(help: "Run the same traffic under off, static and online and show them side by side.")
    var compare = false

    @Option(help: "Traffic skew (log-normal sigma of expert popularity).")
    var skew: Double = 1.0

    @Option(help: "Traffic drift (per-step std of the log-popularity random walk).")
    var drift: Double = 0.05

    @Option(name: .customLong("shift-every"), help: "Steps between abrupt traffic-mix shifts (0 = never).")
    var shiftEvery: Int = 40

    @Option(help: "Seed of weights, traffic and hidden states.")
    var seed: UInt64 = 0

    @Option(help: "Backend: cpu (or another registered device).")
    var device: String = "cpu"

    @Option(help: "Compute threads in total (0 = all cores).")
    var threads: Int = 0

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ValidationError(message) } }
        try check(epSize >= 1, "--ep-size must be >= 1, got \(epSize)")
        try check(steps >= 1, "--steps must be >= 1, got \(steps)")
        try check(tokensPerStep >= 1, "--tokens-per-step must be >= 1, got \(tokensPerStep)")
        try check(rebalanceInterval >= 1, "--rebalance-interval must be >= 1, got \(rebalanceInterval)")
        try check(layerUpdatesPerStep >= 1, "--layer-updates-per-step must be >= 1, got \(layerUpdatesPerStep)")
        try check(verifyEvery >= 0, "--verify-every must be >= 0, got \(verifyEvery)")
        try check(threads >= 0, "--threads must be >= 0, got \(threads)")
        try check(shiftEvery >= 0, "--shift-every must be >= 0, got \(shiftEvery)")
        try check(imbalanceThreshold > 0, "--imbalance-threshold must be > 0 (inf disables), got \(imbalanceThreshold)")
        if let s = numSlots { try check(s >= 1, "--num-slots must be >= 1, got \(s)") }
        try check(!(compare && balancer != .online), "--compare runs all balancers; drop --balancer")
        try check(!(checkpoint != nil && model.isSpecified), "give either --checkpoint or --preset/--config, not both")
        try check(!(trace != nil && (skew != 1.0 || drift != 0.05 || shiftEvery != 40)),
                  "--skew, --drift and --shift-every shape generated traffic; they cannot be used with --trace")
    }

    /// Backends the CLI can run on. A GPU backend adds its `register()` call here.
    static func registerBackends() {
        CPUBackend.register()
        CUDABackend.register()
    }

    /// Fault injection for tests: this rank kills itself (SIGKILL) before step `failAtStep`.
    @Option(help: .hidden) var failRank: Int?
    /// Fault injection: the step before which `failRank` dies.
    @Option(help: .hidden) var failAtStep = 1

    func run() throws {
        Self.registerBackends()
        try RunJob.run(epSize: epSize, serve)
    }

    /// Runs every requested balancer mode; only the job's first rank prints and writes files.
    func serve(_ job: RunJob) throws {
        let setup = try RunSetup.make(self)
        let modes: [BalancerMode] = compare ? [.off, .static, .online] : [balancer]
        var reports: [RunReport] = []
        var counts: [[[Double]]] = []
        var shared: (any MoEBackend)?
        for mode in modes {
            // One process per rank: the backend joins its group once and serves every mode.
            let backend = try shared ?? BackendRegistry.make(
                device, options: BackendOptions(numRanks: epSize, workerThreads: threads))
            if job.isDistributed { shared = backend }
            let options = setup.options(mode: mode)
            let label = mode.rawValue
            let result = try ServingRun.run(
                backend: backend, store: setup.store, initial: setup.initial, workload: setup.workload,
                options: options, staticPlacementGiven: placement != nil, progressInterval: 3,
                progress: { p in
                    guard job.isLeader else { return }
                    CLIOutput.progress(String(
                        format: "[%@] step %d/%d  %.0f tok/s  imbalance %.3f  rebalances %d", label, p.step, p.steps,
                        p.tokensPerSecond, p.imbalanceMean, p.rebalances))
                },
                beforeStep: { step in job.injectFault(rank: failRank, step: failAtStep, now: step) })
            reports.append(result.report)
            counts = result.counts
        }
        guard job.isLeader else {
            if reports.contains(where: { $0.verificationMismatches > 0 || $0.staleSlotObservations > 0 }) {
                throw ExitCode(1)
            }
            return
        }
        if let path = dumpStats {
            let meta = StatsMetadata(
                model: setup.config.name, epSize: epSize, stepRange: 0..<steps,
                workload: trace.map { "replay of \($0)" } ?? "generated: skew \(skew), drift \(drift), shift every \(shiftEvery)",
                source: "wide-ep run (realized routing counts)")
            try StatsFile(perStep: counts, metadata: meta).save(path: path)
        }
        if json {
            if compare { try CLIOutput.printJSON(CompareOutput(config: setup.config.name, runs: reports)) }
            else { try CLIOutput.printJSON(reports[0]) }
        } else {
            print(RunSummary.text(reports: reports, config: setup.config, tokensPerStep: tokensPerStep))
            if let path = dumpStats { print("wrote \(path)") }
        }
        if reports.contains(where: { $0.verificationMismatches > 0 || $0.staleSlotObservations > 0 }) {
            CLIOutput.progress("wide-ep: verification against the dense reference FAILED")
            throw ExitCode(1)
        }
    }
}

/// `--compare --json` output.
struct CompareOutput: Encodable {
    let config: String
    let runs: [RunReport]
}
