import ArgumentParser
import Foundation
import CUDADriver
import WideEPCUDA

/// `wide-ep doctor`: what this machine offers WideEP — GPUs, CUDA versions, libraries and where they were found.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Report GPUs, CUDA driver/NVRTC/cuBLAS/NCCL versions, library locations and the P2P matrix.",
        discussion: "On a machine without a CUDA driver it says so and exits 0: the CPU backend still works.")

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let r = DoctorReport.probe()
        if json {
            try CLIOutput.printJSON(r)
            return
        }
        if !r.cudaAvailable {
            print("CUDA: not available on this machine (\(r.reason ?? "no driver")).")
            print("The CPU backend works without CUDA: `wide-ep run` uses it by default.")
        } else {
            print("CUDA: available, driver supports CUDA \(r.driverCUDAVersion ?? "?")")
        }
        print("NVRTC: \(r.nvrtcVersion ?? "not found")   cuBLAS: \(r.cublasVersion.map(String.init) ?? "not loaded")"
              + (r.cublasGrouped == true ? " (grouped GEMM available)" : "")
              + "   NCCL: \(r.ncclVersion ?? "not found")")
        if let inc = r.nvrtcInclude { print("NVRTC include: \(inc)") }
        var libs = [["library", "found at"]]
        for l in r.libraries { libs.append([l.name, l.path ?? "not found (\(l.tried.count) places tried)"]) }
        print(CLIOutput.table(libs))
        if !r.devices.isEmpty {
            var rows = [["gpu", "name", "cc", "SMs", "memory GiB", "free GiB", "L2 MiB", "PCI"]]
            for d in r.devices {
                rows.append([
                    "\(d.index)", d.name, d.computeCapability, "\(d.multiprocessors)",
                    String(format: "%.1f", d.totalMemoryGiB), String(format: "%.1f", d.freeMemoryGiB),
                    String(format: "%.0f", d.l2CacheMiB), d.pciBusID,
                ])
            }
            print(CLIOutput.table(rows))
            if r.p2p.count > 1 {
                print("P2P matrix (row = from, column = to):")
                var m = [[""] + (0..<r.p2p.count).map { "gpu\($0)" }]
                for (i, row) in r.p2p.enumerated() { m.append(["gpu\(i)"] + row) }
                print(CLIOutput.table(m))
            }
        }
        if r.cudaAvailable, let reason = r.reason { print("warning: \(reason)") }
    }
}
