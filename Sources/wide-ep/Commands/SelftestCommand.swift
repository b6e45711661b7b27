import ArgumentParser
import Foundation
import CUDADriver
import WideEPCUDA

/// `wide-ep selftest --device cuda`: every CUDA kernel against its CPU twin, then the whole layer.
struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check every CUDA kernel against its CPU reference on fresh random inputs.",
        discussion: """
            Outputs are poisoned (NaN) before each run; bf16 GEMM paths pass at relative error ≤ 1e-2, index \
            kernels must match exactly. Exit 0 when all pass, 1 on any failure, 2 when CUDA is unavailable. Under \
            `wide-ep launch` (WORLD_SIZE > 1) it runs the multi-GPU checks instead: dispatch and combine in every mode \
            and the EP layer across the ranks.
            """)

    @Option(help: "Backend to test (only cuda has kernels to check).")
    var device: String = "cuda"

    @Option(help: "Seed of the random inputs (default: from the clock, so every run draws fresh inputs).")
    var seed: UInt64?

    @Option(help: "CUDA device ordinal.")
    var gpu: Int = 0

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        guard device == "cuda" else {
            throw ValidationError("selftest checks GPU kernels: --device must be cuda (got '\(device)')")
        }
        guard CUDA.isAvailable else {
            throw ValidationError("CUDA is unavailable on this machine (\(CUDA.unavailableReason ?? "no driver")); "
                                  + "run `wide-ep doctor` for details")
        }
        if let world = ProcessInfo.processInfo.environment["WORLD_SIZE"].flatMap(Int.init), world > 1 {
            // Under `wide-ep launch`: the multi-GPU checks — dispatch/combine in every mode (bf16 and FP8) and the
            // EP layer across the ranks against the one-GPU layer, which the single-process selftest checks against
            // the dense reference.
            let multi = try BenchDispatchCommand.parse(["--check-only"])
            try multi.run()
            return
        }
        let s = seed ?? UInt64(Date().timeIntervalSince1970 * 1000)
        CLIOutput.progress("selftest: seed \(s)")
        let g = try GPU(ordinal: gpu)
        var test = CUDASelftest(gpu: g, seed: s, progress: CLIOutput.progress)
        let rows = try test.run()
        if json {
            try CLIOutput.printJSON(rows)
        } else {
            var t = [["check", "shape", "metric", "value", "tolerance", "result"]]
            for r in rows {
                t.append([r.name, r.shape, r.metric, String(format: "%.3g", r.value), String(format: "%.0e", r.tolerance),
                          r.passed ? "PASS" : "FAIL"])
            }
            print("selftest on \(g.name) (\(g.architecture)), seed \(s)")
            print(CLIOutput.table(t))
            let failed = rows.filter { !$0.passed }.count
            print(failed == 0 ? "all \(rows.count) checks passed" : "\(failed) of \(rows.count) checks FAILED")
        }
        if rows.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}
