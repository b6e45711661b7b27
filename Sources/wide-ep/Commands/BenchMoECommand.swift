import ArgumentParser
import Foundation
import WideEPCore
import CUDADriver
import WideEPCUDA

/// `wide-ep bench moe --device cuda`: the whole MoE layer and its expert GEMMs on one GPU, against the card's measured
/// dense GEMM rate and read bandwidth (the roofline floor).
struct BenchMoECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moe",
        abstract: "Time one MoE layer (DeepSeek-V3 dims by default) on one GPU against its roofline floor.",
        discussion: """
            Weights and inputs are generated on the GPU from --seed with the same hash as \
            benchmarks/torch_moe_reference.py, so the PyTorch baselines see identical data.
            """)

    @Option(help: "Backend (cuda).")
    var device: String = "cuda"

    @Option(help: "Model preset whose layer shape to use.")
    var preset: String = "deepseek-v3"

    @Option(help: "Comma-separated token counts.")
    var tokens: String = "128,4096,16384"

    @Option(help: "Seed of the weights and inputs (must match the PyTorch script's --seed).")
    var seed: UInt32 = 1234

    @Option(help: "Timed repetitions per measurement (median reported).")
    var repeats: Int = 10

    @Option(help: "CUDA device ordinal.")
    var gpu: Int = 0

    @Option(help: "Write the first 128 output rows of each token count as raw bf16 to DIR/ours_T<n>.bin.")
    var dump: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        guard device == "cuda" else { throw ValidationError("bench moe times the GPU layer: --device must be cuda") }
        let counts = try tokens.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw ValidationError("--tokens: '\(s)' is not a positive integer (e.g. 128,4096,16384)")
            }
            return n
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1, got \(repeats)") }
        let config = try MoEConfig.preset(named: preset)
        guard CUDA.isAvailable else {
            throw ValidationError("CUDA is unavailable on this machine (\(CUDA.unavailableReason ?? "no driver"))")
        }
        let g = try GPU(ordinal: gpu)
        let dumpDir = dump
        let result = try MoEBenchmark.run(
            gpu: g, config: config, tokens: counts, seed: seed, repeats: repeats,
            dumpOutput: dumpDir.map { dir in
                { t, rows in
                    let n = min(128, t) * config.hiddenSize
                    let data = rows[0..<n].withUnsafeBytes { Data($0) }
                    try CLIOutput.writeAtomically(data, to: "\(dir)/ours_T\(t).bin")
                }
            }, progress: CLIOutput.progress)
        if json {
            struct Out: Encodable {
                let device: String
                let preset: String
                let ceilings: DeviceCeilings
                let rows: [MoEBenchRow]
            }
            try CLIOutput.printJSON(Out(device: g.name, preset: config.name, ceilings: result.ceilings, rows: result.rows))
            return
        }
        let c = result.ceilings
        print("bench moe on \(g.name): \(config.name) H=\(config.hiddenSize) I=\(config.moeIntermediateSize) "
              + "E=\(config.numExperts) top-\(config.topK), bf16, seed \(seed)")
        print(String(format: "dense bf16 GEMM %.1f TFLOP/s, read bandwidth %.0f GB/s", c.denseTFLOPS, c.readGBps))
        var t = [["tokens", "path", "layer ms", "tokens/s", "floor ms", "bound", "ours/floor", "expert GEMM TFLOP/s",
                  "% of dense", "mean|out|"]]
        for r in result.rows {
            for (path, ms) in r.layerMs.sorted(by: { $0.key < $1.key }) {
                let tf = r.expertGEMMTFLOPS[path] ?? 0
                t.append([
                    "\(r.tokens)", path, String(format: "%.3f", ms), String(format: "%.0f", Double(r.tokens) / ms * 1e3),
                    String(format: "%.3f", r.floorMs), r.floorBound, String(format: "%.2f", ms / r.floorMs),
                    String(format: "%.1f", tf), String(format: "%.0f%%", tf / c.denseTFLOPS * 100),
                    String(format: "%.5f", r.meanAbsOutput),
                ])
            }
        }
        print(CLIOutput.table(t))
    }
}
