import ArgumentParser
import CUDADriver
import Foundation
import WideEPCore
import WideEPCUDA
import WideEPDistributed

extension TCPStore: CommStore {}

/// `wide-ep bench dispatch`: multi-GPU dispatch/combine (NVLink normal, NVLink low-latency, NCCL) at DeepSeek-V3
/// shapes, checked against host references first, next to torch `all_to_all_single` and the P2P copy ceiling.
struct BenchDispatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatch",
        abstract: "Check and time expert-parallel dispatch/combine across GPUs (run under `wide-ep launch`).",
        discussion: """
            Example: wide-ep launch --nproc-per-node 2 -- bench dispatch --tokens 128,4096. Bytes are counted as \
            DeepEP does: rows actually sent × H × 2 (bf16; FP8 adds one float scale per 128 channels), combine \
            the same rows in bf16. Every rank first checks its received rows, metadata and combined outputs \
            against host references (--no-check skips this); a failed check exits 1.
            """)

    @Option(help: "Comma-separated tokens per rank.")
    var tokens = "128,4096"

    @Option(help: "Comma-separated modes: normal, low-latency, nccl.")
    var mode = "normal,low-latency,nccl"

    @Flag(help: "Dispatch in FP8 e4m3 with per-128-channel scales (combine stays bf16).")
    var fp8 = false

    @Option(help: "Hidden size H.") var hidden = 7168
    @Option(help: "Routed experts E (a multiple of the ranks).") var experts = 256
    @Option(help: "Experts per token.") var topK = 8
    @Option(help: "Low-latency capacity, tokens per rank (low-latency runs only token counts up to it).")
    var lowLatencyCapacity = 128
    @Option(help: "Timed iterations per measurement (median reported).") var iterations = 20
    @Option(help: "Untimed warm-up iterations.") var warmup = 3
    @Option(help: "Blocks of the normal-mode kernels (the SMs the transport may use).") var blocks = 48
    @Option(help: "Seconds a kernel waits for a peer before failing.") var timeout = 30.0
    @Flag(inversion: .prefixedNo, help: "Check correctness (bf16 and FP8, both modes) before timing.")
    var check = true
    @Flag(help: "Only run the checks.") var checkOnly = false
    @Option(help: "Tokens per rank of the normal-mode check.") var checkTokens = 256
    @Option(help: "Preset of the EP-layer check (the N-GPU layer against the single-GPU layer); 'none' skips it.")
    var layerPreset = "deepseek-v3-mini"
    @Option(help: "Tokens per rank of the EP-layer check.") var layerTokens = 96
    @Option(help: "Baseline: auto (run benchmarks/torch_a2a_reference.py from rank 0), off, or a JSON file it wrote.")
    var torchBaseline = "auto"
    @Option(help: "Write the results as JSON to this file (rank 0).") var out: String?
    @Option(help: "Fault injection: this rank kills itself (SIGKILL) once the IPC buffers are mapped, while its peers enter their first dispatch.")
    var failRank: Int?

    func parsedTokens() throws -> [Int] {
        try tokens.split(separator: ",").map { s in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw ValidationError("--tokens: '\(s)' is not a positive integer (e.g. 128,4096)")
            }
            return n
        }
    }

    func parsedModes() throws -> [String] {
        let known = ["normal", "low-latency", "nccl"]
        return try mode.split(separator: ",").map { s in
            let m = s.trimmingCharacters(in: .whitespaces)
            guard known.contains(m) else {
                throw ValidationError("--mode: '\(m)' is not one of \(known.joined(separator: ", "))")
            }
            return m
        }
    }

    func run() throws {
        do {
            try runBody()
        } catch {
            // The CLI prints one line; a compile log or a multi-line driver message goes to stderr in full first.
            let text = "\(error)"
            if text.contains("\n") { CLIOutput.progress("bench dispatch: " + text) }
            throw error
        }
    }

    func runBody() throws {
        let counts = try parsedTokens(), modes = try parsedModes()
        guard iterations >= 1, warmup >= 0 else { throw ValidationError("--iterations must be ≥ 1 and --warmup ≥ 0") }
        guard lowLatencyCapacity >= 1 else { throw ValidationError("--low-latency-capacity must be ≥ 1") }
        guard CUDA.isAvailable else {
            throw ValidationError("CUDA is unavailable on this machine (\(CUDA.unavailableReason ?? "no driver"))")
        }
        let session = try DistributedSession.join(beforeExit: CommAbort.all)
        let env = session.env
        guard let store = session.store, env.worldSize >= 2 else {
            throw ValidationError(
                "bench dispatch needs at least 2 ranks: run it as `wide-ep launch --nproc-per-node 2 -- bench dispatch`")
        }
        let shape = EPShape(ranks: env.worldSize, hidden: hidden, experts: experts, topK: topK,
                            maxTokens: max(counts.max()!, checkTokens), lowLatencyTokens: lowLatencyCapacity)
        do { try shape.validate() } catch { throw ValidationError("\(error)") }
        let devices = try CUDA.deviceCount()
        let gpu = try GPU(ordinal: env.localRank % devices)
        let sharedGPU = devices < env.localWorldSize
        let log: (String) -> Void = { if env.rank == 0 { CLIOutput.progress("bench dispatch: " + $0) } }
        log("\(env.worldSize) ranks on \(devices) × \(gpu.name)\(sharedGPU ? " (ranks share a GPU: timings are not NVLink figures)" : ""); H \(hidden), E \(experts), top-\(topK)")
        let ep = try NVLinkEP(gpu: gpu, rank: env.rank, shape: shape, store: store, timeoutSeconds: timeout)
        ep.normalBlocks = max(1, blocks)
        let harness = try EPHarness(ep: ep)
        // Importers close their IPC mappings, all ranks meet, and only then is the buffer freed: before the store goes.
        let finish = { ep.memory.close(); session.finish() }
        if let failRank, failRank == env.rank {
            CLIOutput.progress("bench dispatch: rank \(env.rank) injecting a crash (SIGKILL) after mapping the buffers")
            kill(getpid(), SIGKILL)
        }
        var failures: [String] = []
        if check || checkOnly {
            failures = try runChecks(harness: harness, log: log)
            if layerPreset != "none" {
                failures += try runLayerCheck(gpu: gpu, rank: env.rank, ranks: env.worldSize, store: store, log: log)
            }
            let all = try store.allGather("bench-dispatch/check", Array(failures.joined(separator: "\n").utf8))
                .map { String(decoding: $0, as: UTF8.self) }.filter { !$0.isEmpty }
            if env.rank == 0 {
                print(all.isEmpty ? "multi-GPU check: all passed on \(env.worldSize) ranks" : "multi-GPU check FAILED:\n" + all.joined(separator: "\n"))
            }
            if !all.isEmpty { finish(); throw ExitCode(1) }
        }
        if checkOnly { finish(); return }
        let bench = EPBenchmark(harness: harness, iterations: iterations, warmup: warmup)
        var samples: [EPBenchSample] = [], notes: [String] = []
        var ncclComm: NCCLCommunicator<CUDAByteBuffer>?
        for t in counts {
            samples.append(try bench.p2pCopy(tokens: t))
            for m in modes {
                switch m {
                case "normal":
                    log("normal, \(t) tokens")
                    samples.append(try bench.normal(tokens: t, fp8: fp8))
                case "low-latency":
                    guard t <= lowLatencyCapacity else { notes.append("low-latency skipped at \(t) tokens (capacity \(lowLatencyCapacity))"); continue }
                    log("low-latency, \(t) tokens")
                    samples.append(try bench.lowLatency(tokens: t, fp8: fp8))
                default:
                    if sharedGPU { notes.append("nccl skipped: NCCL refuses two ranks on one GPU"); continue }
                    log("nccl, \(t) tokens")
                    if ncclComm == nil { ncclComm = try NCCLCommunicator(gpu: gpu, rank: env.rank, size: env.worldSize, store: store) }
                    let (s, bad) = try bench.nccl(tokens: t, comm: ncclComm!)
                    if !bad.isEmpty { failures += bad }
                    samples.append(s)
                }
            }
        }
        let enc = JSONEncoder()
        let gathered = try store.allGather("bench-dispatch/samples", Array(try enc.encode(samples)))
            .map { try JSONDecoder().decode([EPBenchSample].self, from: Data($0)) }
        let sendMatrix = try counts.map { t -> [[Int]] in
            let d = EPTestData(shape: shape, rank: env.rank, tokens: t, seed: harness.seed)
            let mine = CommLayout.sendCounts(topk: d.topk, topK: topK, expertsPerRank: shape.expertsPerRank, numRanks: env.worldSize)
            return try store.allGather("bench-dispatch/counts/\(t)", Array(try enc.encode(mine)))
                .map { try JSONDecoder().decode([Int].self, from: Data($0)) }
        }
        // Every rank releases its NCCL clique and IPC mappings (collectively) before rank 0 starts the torch job.
        ncclComm = nil
        ep.memory.close()
        if env.rank == 0 {
            let baseline = torchBaselineResults(counts: counts, matrices: sendMatrix, sharedGPU: sharedGPU, notes: &notes)
            try report(gathered: gathered, baseline: baseline, notes: notes, gpuName: gpu.name, devices: devices,
                       ranks: env.worldSize)
        }
        finish()
        if !failures.isEmpty {
            for f in failures { CLIOutput.progress("bench dispatch: " + f) }
            throw ExitCode(1)
        }
    }

    func runChecks(harness: EPHarness, log: (String) -> Void) throws -> [String] {
        var failures: [String] = []
        let ll = min(lowLatencyCapacity, 128)
        for f in [false, true] {
            log("check normal \(f ? "fp8" : "bf16"), \(checkTokens) tokens")
            failures += try harness.checkNormal(tokens: checkTokens, fp8: f)
            log("check low-latency \(f ? "fp8" : "bf16"), \(ll) tokens")
            failures += try harness.checkLowLatency(tokens: ll, fp8: f)
        }
        // Zero and one token: nothing (or little) to send must still signal, and epochs keep advancing.
        for t in [0, 1] {
            failures += try harness.checkNormal(tokens: t, fp8: false)
            failures += try harness.checkLowLatency(tokens: t, fp8: false)
        }
        // Low-latency dispatch + combine captured once in a CUDA graph, replayed on fresh inputs (EPGraphCheck).
        for f in [false, true] {
            log("check low-latency \(f ? "fp8" : "bf16") in a CUDA graph, \(ll) tokens, 5 replays")
            let g = try EPGraphCheck(harness: harness).run(tokens: ll, fp8: f, replays: 5, iterations: iterations, warmup: warmup)
            failures += g.failures
            CLIOutput.progress(String(
                format: "bench dispatch: rank %d: low-latency %@ %d tokens, dispatch+expert+combine: eager %.1f µs, graph replay %.1f µs (GPU, median of %d); enqueue %.1f µs eager, %.1f µs graph (host)",
                harness.ep.rank, f ? "fp8" : "bf16", ll, g.eagerMicros, g.graphMicros, iterations, g.eagerEnqueueMicros,
                g.graphEnqueueMicros))
        }
        return failures
    }
}

extension BenchDispatchCommand {
    /// The N-GPU layer (bf16 and FP8 dispatch) against the single-GPU layer on the same seeded weights.
    func runLayerCheck(gpu: GPU, rank: Int, ranks: Int, store: CommStore, log: (String) -> Void) throws -> [String] {
        let config: MoEConfig
        do { config = try MoEConfig.preset(named: layerPreset) } catch { throw ValidationError("--layer-preset: \(error)") }
        let shape = EPShape(ranks: ranks, hidden: config.hiddenSize, experts: config.numExperts, topK: config.topK,
                            maxTokens: max(1, layerTokens), lowLatencyTokens: 0)
        do { try shape.validate() } catch { throw ValidationError("--layer-preset \(layerPreset) on \(ranks) ranks: \(error)") }
        let ep = try NVLinkEP(gpu: gpu, rank: rank, shape: shape, store: store, name: "nvlink-ep-layer", timeoutSeconds: timeout)
        defer { ep.memory.close() }
        let check = try EPLayerCheck(ep: ep, config: config, seed: 4242)
        var failures: [String] = []
        for (fp8, tolerance) in [(false, 1e-2), (true, 8e-2)] {
            let err = try check.run(tokens: layerTokens, fp8: fp8)
            let line = String(format: "EP layer %@ (%@, %d ranks, %d tokens/rank) vs single-GPU layer: rel. L2 error %.2e (tolerance %.0e)",
                              fp8 ? "fp8" : "bf16", config.name, ranks, layerTokens, err, tolerance)
            CLIOutput.progress("bench dispatch: rank \(rank): " + line)
            if !(err <= tolerance) { failures.append("rank \(rank): " + line) }
        }
        return failures
    }
}
