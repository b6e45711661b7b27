import ArgumentParser
import Foundation
import WideEPCUDA
import WideEPDistributed

/// The torch baseline's results (benchmarks/torch_a2a_reference.py --out).
struct TorchA2AResults: Codable {
    struct Row: Codable {
        let tokens: Int
        let dispatch_us: Double
        let combine_us: Double
        let bytes: Int
    }
    let world_size: Int
    let results: [Row]
}

extension BenchDispatchCommand {
    /// Runs (or reads) the torch `all_to_all_single` baseline with the same per-rank send counts.
    func torchBaselineResults(counts: [Int], matrices: [[[Int]]], sharedGPU: Bool, notes: inout [String]) -> TorchA2AResults? {
        if torchBaseline == "off" { return nil }
        var path = torchBaseline
        if torchBaseline == "auto" {
            if sharedGPU { notes.append("torch baseline skipped: NCCL refuses two ranks on one GPU"); return nil }
            let dir = NSTemporaryDirectory() + "wideep-a2a-\(getpid())"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            struct Spec: Encodable { let hidden: Int; let tokens: [Int]; let counts: [[[Int]]]; let iterations: Int; let warmup: Int }
            let spec = dir + "/counts.json"
            path = dir + "/torch.json"
            do {
                try JSONEncoder().encode(Spec(hidden: hidden, tokens: counts, counts: matrices, iterations: iterations, warmup: warmup))
                    .write(to: URL(fileURLWithPath: spec))
            } catch { notes.append("torch baseline skipped: cannot write \(spec): \(error)"); return nil }
            let script = ProcessInfo.processInfo.environment["WIDEEP_TORCH_A2A"] ?? "benchmarks/torch_a2a_reference.py"
            guard FileManager.default.fileExists(atPath: script) else {
                notes.append("torch baseline skipped: \(script) not found (set WIDEEP_TORCH_A2A)")
                return nil
            }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            let port = (try? Launcher.freeLocalPort()) ?? 29611
            p.arguments = ["python3", "-m", "torch.distributed.run", "--nproc-per-node", "\(matrices.first?.count ?? 2)",
                           "--master-port", "\(port)", script, "--spec", spec, "--out", path]
            var env = ProcessInfo.processInfo.environment
            for k in ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"] { env[k] = nil }
            env["NCCL_NVLS_ENABLE"] = "0"
            env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
            p.environment = env
            CLIOutput.progress("bench dispatch: running the torch all_to_all_single baseline")
            do { try p.run(); p.waitUntilExit() } catch { notes.append("torch baseline failed to start: \(error)"); return nil }
            guard p.terminationStatus == 0 else { notes.append("torch baseline exited with \(p.terminationStatus)"); return nil }
        }
        do {
            return try JSONDecoder().decode(TorchA2AResults.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            notes.append("torch baseline unreadable (\(path)): \(error)")
            return nil
        }
    }

    /// Prints the table (and writes --out): the slowest rank's median time, the mean DeepEP-style bytes.
    func report(gathered: [[EPBenchSample]], baseline: TorchA2AResults?, notes: [String], gpuName: String, devices: Int,
                ranks: Int) throws {
        struct Row: Encodable {
            let mode: String, tokens: Int, fp8: Bool
            let dispatch_us: Double, dispatch_GBps: Double, combine_us: Double, combine_GBps: Double
            let torch_dispatch_us: Double?, torch_combine_us: Double?, p2p_GBps: Double?
        }
        var rows: [Row] = []
        let first = gathered[0]
        for (i, s) in first.enumerated() {
            let per = gathered.map { $0[i] }
            let d = per.map(\.dispatchMicros).max()!, c = per.map(\.combineMicros).max()!
            let db = per.map(\.dispatchBytes).reduce(0, +) / per.count, cb = per.map(\.combineBytes).reduce(0, +) / per.count
            let torch = baseline?.results.first { $0.tokens == s.tokens }
            let p2p = first.indices.first { first[$0].mode == "p2p-copy" && first[$0].tokens == s.tokens }.map { j -> Double in
                let q = gathered.map { $0[j] }
                return CommBytes.gigabytesPerSecond(bytes: q.map(\.dispatchBytes).reduce(0, +) / q.count,
                                                    microseconds: q.map(\.dispatchMicros).max()!)
            }
            rows.append(Row(
                mode: s.mode, tokens: s.tokens, fp8: s.fp8, dispatch_us: d,
                dispatch_GBps: CommBytes.gigabytesPerSecond(bytes: db, microseconds: d), combine_us: c,
                combine_GBps: CommBytes.gigabytesPerSecond(bytes: cb, microseconds: c),
                torch_dispatch_us: s.mode == "p2p-copy" ? nil : torch?.dispatch_us,
                torch_combine_us: s.mode == "p2p-copy" ? nil : torch?.combine_us, p2p_GBps: p2p))
        }
        func f(_ v: Double?, _ fmt: String = "%.1f") -> String { v.map { String(format: fmt, $0) } ?? "-" }
        print("bench dispatch: \(ranks) ranks on \(devices) × \(gpuName); H \(hidden), E \(experts), top-\(topK); "
              + "slowest rank's median of \(iterations); bytes as DeepEP counts them")
        var t = [["tokens", "mode", "dispatch µs", "GB/s", "combine µs", "GB/s", "torch a2a µs (d/c)", "torch/ours (d/c)",
                  "P2P ceiling GB/s", "ours/ceiling (d/c)"]]
        for r in rows {
            let isCopy = r.mode == "p2p-copy"
            t.append([
                "\(r.tokens)", r.mode + (r.fp8 ? " fp8" : ""), f(r.dispatch_us), f(r.dispatch_GBps),
                isCopy ? "-" : f(r.combine_us), isCopy ? "-" : f(r.combine_GBps),
                r.torch_dispatch_us.map { "\(f($0))/\(f(r.torch_combine_us))" } ?? "-",
                r.torch_dispatch_us.map { "\(f($0 / r.dispatch_us, "%.2f"))×/\(f((r.torch_combine_us ?? 0) / r.combine_us, "%.2f"))×" } ?? "-",
                f(r.p2p_GBps),
                isCopy ? "-" : r.p2p_GBps.map { "\(f(100 * r.dispatch_GBps / $0, "%.0f"))%/\(f(100 * r.combine_GBps / $0, "%.0f"))%" } ?? "-",
            ])
        }
        print(CLIOutput.table(t))
        for n in Array(Set(notes)).sorted() { print("note: " + n) }
        if let out {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try CLIOutput.writeAtomically(try enc.encode(rows), to: out)
        }
    }
}
