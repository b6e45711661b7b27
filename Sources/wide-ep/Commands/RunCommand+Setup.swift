import ArgumentParser
import Foundation
import WideEPCore
import WideEPRuntime
import WideEPWorkload

/// Everything `wide-ep run` builds before serving: model, weights, initial placement, workload.
struct RunSetup {
    let config: MoEConfig
    let store: [MoELayerWeights]
    let initial: [Placement]
    let workload: RoutingWorkload
    let request: PlannerRequest
    let command: RunCommand

    /// Share of the host's physical memory that the float32 expert stores of this node's processes (and, on the
    /// CPU backend, their slot buffers) may take; random weights beyond it are refused before any allocation.
    static let maxHostMemoryShare = 0.75

    /// Host bytes that random weights of `config` take on this node: every process on it (`processesPerNode`) keeps
    /// the whole float32 store; the CPU backend also keeps its slot buffers (`numSlots` expert copies per layer) in
    /// host memory, a GPU backend on the device.
    static func hostWeightBytes(config: MoEConfig, numSlots: Int, processesPerNode: Int, device: String) -> Int {
        let perExpert = 3 * config.hiddenSize * config.moeIntermediateSize * 4
        let slots = device == "cpu" ? numSlots : 0
        return perExpert * (config.numExperts + slots) * config.numMoELayers * max(1, processesPerNode)
    }

    /// The host's physical memory in bytes.
    static var physicalMemoryBytes: Int { sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE)) }

    static func make(_ c: RunCommand) throws -> RunSetup {
        var config: MoEConfig
        var store: [MoELayerWeights]
        if let dir = c.checkpoint {
            let summary = try CheckpointLoader.summary(directory: dir)
            CLIOutput.progress("loading \(summary.moeLayers.count) MoE layers from \(dir)")
            store = try summary.moeLayers.map { try CheckpointLoader.loadLayer(directory: dir, layer: $0) }
            config = store[0].config
            config.numMoELayers = store.count
        } else {
            config = try c.model.resolve(fallback: .deepseekV3Mini)
            store = []  // generated below, once the slot count is known and the memory check has passed
        }
        let e = config.numExperts, r = c.epSize
        var file: PlacementFile?
        if let path = c.placement {
            let f = try PlacementFile.load(path: path, numRanks: r, numExperts: e)
            guard f.numLayers == config.numMoELayers else {
                throw ValidationError("\(path) has \(f.numLayers) layers but the model has \(config.numMoELayers)")
            }
            if let s = c.numSlots, s != f.numSlots {
                throw ValidationError("\(path) has \(f.numSlots) slots per layer but --num-slots is \(s)")
            }
            file = f
        }
        let slots = c.numSlots ?? file?.numSlots ?? (r == 1 ? e : e % r == 0 ? e + r : (e + r - 1) / r * r)
        if c.checkpoint == nil {
            let local = ProcessInfo.processInfo.environment["LOCAL_WORLD_SIZE"].flatMap { Int($0) } ?? 1
            let bytes = hostWeightBytes(config: config, numSlots: slots, processesPerNode: local, device: c.device)
            let limit = Int(Double(physicalMemoryBytes) * maxHostMemoryShare)
            guard bytes <= limit else {
                throw ValidationError(
                    "\(config.name) needs \(bytes >> 30) GiB of float32 expert weights in host memory (\(local) "
                        + "process(es) on this host, each with the whole store; limit \(limit >> 30) GiB = "
                        + "\(Int(maxHostMemoryShare * 100))% of RAM); shrink it, e.g. --set numMoELayers=1 --set hiddenSize=512")
            }
            let storeBytes = hostWeightBytes(config: config, numSlots: 0, processesPerNode: 1, device: "")
            if storeBytes >= 1 << 30 {
                CLIOutput.progress(String(format: "generating random expert weights: %d layers, %.1f GB per process",
                                          config.numMoELayers, Double(storeBytes) / 1e9))
            }
            store = (0..<config.numMoELayers).map { MoELayerWeights.random(config: config, seed: c.seed &+ UInt64($0)) }
        }
        let request = PlannerRequest(
            numSlots: slots, topology: try Topology(numRanks: r), policy: c.policy, numExpertGroups: config.numGroups)
        try request.validate(numExperts: e)
        let initial = try file?.placements
            ?? Planner.plan(loads: Array(repeating: Array(repeating: 1, count: e), count: config.numMoELayers),
                            request: request)
        let workload: RoutingWorkload
        if let path = c.trace {
            let stats = try StatsFile.load(path: path)
            guard let perStep = stats.perStep else {
                throw ValidationError("\(path) has totals only; --trace needs per-step counts [steps][layers][experts]")
            }
            workload = try RoutingWorkload(replay: perStep, config: config)
        } else {
            workload = try RoutingWorkload(
                config: config,
                traffic: TrafficOptions(
                    steps: c.steps, tokensPerStep: c.tokensPerStep, seed: c.seed, skew: c.skew, drift: c.drift,
                    shiftEvery: c.shiftEvery))
        }
        return RunSetup(config: config, store: store, initial: initial, workload: workload, request: request, command: c)
    }

    func options(mode: BalancerMode) -> RunOptions {
        RunOptions(
            steps: command.steps, tokensPerStep: command.tokensPerStep,
            balancer: BalancerOptions(
                mode: mode, rebalanceInterval: command.rebalanceInterval,
                imbalanceThreshold: command.imbalanceThreshold,
                layerUpdatesPerStep: command.layerUpdatesPerStep, request: request),
            split: command.split, verifyEvery: command.verifyEvery, seed: command.seed)
    }
}

/// The human-readable summary.
enum RunSummary {
    static func text(reports: [RunReport], config: MoEConfig, tokensPerStep: Int) -> String {
        let first = reports[0]
        func f(_ x: Double, _ d: Int = 3) -> String { String(format: "%.\(d)f", x) }
        func mb(_ b: Int) -> String { String(format: "%.1f MB", Double(b) / 1e6) }
        var rows = [["metric"] + reports.map(\.balancer.rawValue)]
        func add(_ name: String, _ value: (RunReport) -> String) { rows.append([name] + reports.map(value)) }
        add("tokens/s (serving)") { f($0.tokensPerSecond, 0) }
        add("tokens/s (wall, harness incl.)") { f($0.wallTokensPerSecond, 0) }
        add("imbalance mean") { f($0.imbalanceMean) }
        add("imbalance p99") { f($0.imbalanceP99) }
        add("balancedness") { f($0.balancedness) }
        add("dispatch rows per token") { f($0.dispatchRowsPerToken, 2) }
        add("rebalances") { "\($0.rebalances)" }
        add("slots moved") { "\($0.slotsMoved)" }
        add("bytes copied") { mb($0.bytesCopied) }
        add("migration time") { "\(f($0.migrationSeconds * 1000, 1)) ms (stalled \(f($0.migrationStallSeconds * 1000, 1)) ms)" }
        func ms(_ x: Double?) -> String { x.map { f($0 * 1000, 2) } ?? "-" }
        add("step time steady/migrating") { r in
            let m = r.migration
            let ratio = m.migratingToSteadyRatio.map { " (×\(f($0)))" } ?? ""
            return "\(ms(m.steadyStepSeconds)) / \(ms(m.migratingStepSeconds)) ms\(ratio) [\(m.steadySteps)/\(m.migratingSteps) steps]"
        }
        add("layer copy mean/max") { r in
            r.migration.copyJobs == 0 ? "-"
                : "\(ms(r.migration.meanLayerCopySeconds)) / \(ms(r.migration.maxLayerCopySeconds)) ms (\(r.migration.copyJobs) jobs)"
        }
        add("copy wait max/step") { r in
            "\(ms(r.migration.maxStepCopyWaitSeconds)) ms (\(r.migration.copyWaits) waits)"
        }
        add("bytes per rebalance") { mb(Int($0.migration.bytesPerRebalance)) }
        add("pinned host store") { $0.migration.pinnedHostBytes > 0 ? mb($0.migration.pinnedHostBytes) : "no" }
        add("verification") { $0.verifications == 0 ? "off" : "\($0.verificationMismatches)/\($0.verifications) mismatches (max rel err \(String(format: "%.1e", $0.maxRelativeError)))" }
        add("time route/dispatch/ffn/combine") { r in
            let t = max(r.phases.total, 1e-12)
            return [r.phases.route, r.phases.dispatch, r.phases.ffn, r.phases.combine]
                .map { String(format: "%.0f%%", 100 * $0 / t) }.joined(separator: "/")
        }
        let header = "\(config.name): \(config.numMoELayers) MoE layers, E=\(config.numExperts), top-\(config.topK), "
            + "H=\(config.hiddenSize), I=\(config.moeIntermediateSize) | \(first.device) EP\(first.ranks)"
            + (first.processes > 1 ? " (\(first.processes) processes), " : ", ")
            + "\(first.numSlots) slots | \(first.steps) steps × \(tokensPerStep) tokens"
        return header + "\n" + CLIOutput.table(rows)
    }
}
