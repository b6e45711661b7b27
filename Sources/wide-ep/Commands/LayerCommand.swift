import ArgumentParser
import Foundation
import WideEPCore
import WideEPRuntime
import WideEPWorkload

/// `wide-ep layer`: runs one MoE layer of a Hugging Face checkpoint over EP ranks on a batch of hidden states.
struct LayerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layer",
        abstract: "Run one MoE layer of a Hugging Face checkpoint over EP ranks on tensor hidden_states [T, H].",
        discussion: """
            Loads layer N (DeepSeek-V2/V3, Qwen2/3-MoE or Mixtral key layout; BF16, F16, F32 or FP8 block-scaled \
            weights), plans a placement of its experts from the routed counts of the input, runs the EP layer and \
            writes tensor `output` [T, H] (F32) to --output.
            """)

    @Option(help: "Hugging Face checkpoint folder (config.json plus model.safetensors or model.safetensors.index.json).")
    var checkpoint: String

    @Option(help: "Decoder layer index N of an MoE layer.")
    var layer: Int

    @Option(help: "safetensors file with tensor hidden_states [T, H].")
    var input: String

    @Option(help: "safetensors file to write with tensor output [T, H] (F32).")
    var output: String

    @Option(name: .customLong("ep-size"), help: "EP ranks (R).")
    var epSize: Int = 1

    @Option(name: .customLong("num-slots"), help: "Expert slots (multiple of R, >= E; default E). More than E adds replicas.")
    var numSlots: Int?

    @Option(help: "Planner policy: none, greedy, deepseek or balanced.")
    var policy: PlannerPolicy = .balanced

    @Option(help: "Replica split per batch: even or balanced.")
    var split: SplitPolicy = .balanced

    @Option(help: "Backend: cpu (or another registered device).")
    var device: String = "cpu"

    @Option(help: "Compute threads in total (default: all cores).")
    var threads: Int = 0

    @Option(help: "safetensors file with tensor output [T, H] to compare against (e.g. transformers' own output).")
    var expected: String?

    @Option(help: "Largest relative error ‖y − expected‖₂ / ‖expected‖₂ accepted with --expected (exit 1 above it).")
    var tolerance: Double = 1e-4

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        guard layer >= 0 else { throw ValidationError("--layer must be >= 0, got \(layer)") }
        guard epSize >= 1 else { throw ValidationError("--ep-size must be >= 1, got \(epSize)") }
        if let s = numSlots { guard s >= 1 else { throw ValidationError("--num-slots must be >= 1, got \(s)") } }
        guard threads >= 0 else { throw ValidationError("--threads must be >= 0, got \(threads)") }
        guard tolerance.isFinite, tolerance >= 0 else {
            throw ValidationError("--tolerance must be a finite value >= 0, got \(tolerance)")
        }
    }

    func run() throws {
        RunCommand.registerBackends()
        // Under `wide-ep launch` each process drives one rank; rank 0 writes the output and prints.
        try RunJob.run(epSize: epSize, runLayer)
    }

    func runLayer(_ job: RunJob) throws {
        // Everything that can be wrong with the flags, the input or the checkpoint's keys is checked before the
        // (possibly long) weight conversion starts, so bad input fails fast with one line.
        let c = try CheckpointLoader.summary(directory: checkpoint).config
        let (hidden, tokens) = try Self.readMatrix(input, tensor: "hidden_states", width: c.hiddenSize)
        var want: [Float]?
        if let expected {
            let (y, rows) = try Self.readMatrix(expected, tensor: "output", width: c.hiddenSize)
            guard rows == tokens else {
                throw ValidationError("\(expected): tensor 'output' has \(rows) rows but the input has \(tokens)")
            }
            want = y
        }
        let slots = numSlots ?? c.numExperts
        _ = try LayerRun.request(config: c, epSize: epSize, numSlots: slots, policy: policy)
        let backend = try BackendRegistry.make(device, options: BackendOptions(numRanks: epSize, workerThreads: threads))
        let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("cannot write --output \(output): folder \(folder) does not exist")
        }
        let log: (String) -> Void = { if job.isLeader { CLIOutput.progress($0) } }
        let weights = try CheckpointLoader.loadLayer(directory: checkpoint, layer: layer, progress: log)
        let counts = LayerRun.expertCounts(weights: weights, hidden: hidden, tokens: tokens)
        let placement = try LayerRun.plan(counts: counts, config: c, epSize: epSize, numSlots: slots, policy: policy)
        log("running \(tokens) tokens on \(device) EP\(epSize), \(slots) slots (\(policy.rawValue))")
        let result = try LayerRun.run(
            backend: backend, weights: weights, hidden: hidden, tokens: tokens, placement: placement, split: split)
        var error: Double?
        if let want { error = Self.relativeError(result.output, want) }
        guard job.isLeader else {
            if let error, !(error <= tolerance) { throw ExitCode(1) }
            return
        }

        var writer = SafeTensorsWriter(metadata: [
            "checkpoint": checkpoint, "layer": "\(layer)", "ep_size": "\(epSize)", "num_slots": "\(slots)",
            "policy": policy.rawValue, "split": split.rawValue, "device": device,
        ])
        try writer.add(name: "output", shape: [tokens, c.hiddenSize], floats: result.output, as: .f32)
        try writer.write(to: output)

        let summary = LayerSummary(
            checkpoint: checkpoint, layer: layer, model: c.name, tokens: tokens, hiddenSize: c.hiddenSize,
            experts: c.numExperts, topK: c.topK, epSize: epSize, numSlots: slots, policy: policy.rawValue,
            split: split.rawValue, device: device, setupSeconds: result.setupSeconds, seconds: result.forwardSeconds,
            tokensPerSecond: Double(tokens) / result.forwardSeconds,
            imbalance: result.imbalance, rankLoads: result.rankLoads, phaseSeconds: result.times,
            relativeError: error, tolerance: expected == nil ? nil : tolerance, output: output)
        if json { try CLIOutput.printJSON(summary) } else { print(summary.table) }
        if let error, !(error <= tolerance) {
            CLIOutput.progress(String(format: "wide-ep: relative error %.3g exceeds --tolerance %.3g", error, tolerance))
            throw ExitCode(1)
        }
    }

    /// Reads tensor `tensor` of `path` as a [rows, width] float32 matrix.
    static func readMatrix(_ path: String, tensor: String, width: Int) throws -> ([Float], Int) {
        let t = try SafeTensorsFile(path: path).tensor(named: tensor)
        guard t.shape.count == 2, t.shape[1] == width, t.shape[0] >= 1 else {
            throw ValidationError("\(path): tensor '\(tensor)' has shape \(t.shape), expected [T, \(width)] with T >= 1")
        }
        guard !t.dtype.isInteger else {
            throw ValidationError("\(path): tensor '\(tensor)' has dtype \(t.dtype.rawValue), expected a float type")
        }
        return (t.floats(), t.shape[0])
    }

    /// ‖a − b‖₂ / ‖b‖₂.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        return (num / max(den, .leastNormalMagnitude)).squareRoot()
    }
}

/// What `wide-ep layer` prints.
struct LayerSummary: Encodable {
    var checkpoint: String
    var layer: Int
    var model: String
    var tokens: Int
    var hiddenSize: Int
    var experts: Int
    var topK: Int
    var epSize: Int
    var numSlots: Int
    var policy: String
    var split: String
    var device: String
    /// Wall time to fill the ranks' slot buffers and upload the dense weights, seconds.
    var setupSeconds: Double
    /// Wall time of the EP forward (weights already in slots), seconds.
    var seconds: Double
    var tokensPerSecond: Double
    /// Realized (max − mean) / mean of the rank loads.
    var imbalance: Double
    var rankLoads: [Double]
    /// Slowest rank per phase, seconds.
    var phaseSeconds: PhaseTimes
    /// ‖y − expected‖₂ / ‖expected‖₂ when --expected was given.
    var relativeError: Double?
    var tolerance: Double?
    var output: String

    var table: String {
        func ms(_ s: Double) -> String { String(format: "%.2f ms", s * 1e3) }
        var rows = [
            ["layer", "\(layer) of \(checkpoint) (\(model))"],
            ["shape", "T=\(tokens) H=\(hiddenSize) E=\(experts) top-\(topK)"],
            ["ep", "\(device) EP\(epSize), \(numSlots) slots, policy \(policy), split \(split)"],
            ["forward", "\(ms(seconds)) (\(String(format: "%.0f", tokensPerSecond)) tok/s; one cold step)"],
            ["setup", "\(ms(setupSeconds)) (filling \(numSlots) slots)"],
            ["phases", "route \(ms(phaseSeconds.route)), dispatch \(ms(phaseSeconds.dispatch)), "
                + "ffn \(ms(phaseSeconds.ffn)), combine \(ms(phaseSeconds.combine))"],
            ["imbalance", String(format: "%.3f (rank loads %@)", imbalance,
                                 rankLoads.map { String(format: "%.0f", $0) }.joined(separator: " "))],
        ]
        if let relativeError, let tolerance {
            rows.append(["vs expected", String(format: "relative error %.3g (%@ %.0e)", relativeError,
                                               relativeError <= tolerance ? "<=" : ">", tolerance)])
        }
        rows.append(["output", output])
        return CLIOutput.table(rows)
    }
}
