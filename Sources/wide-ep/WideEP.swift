import ArgumentParser
import Foundation
import WideEPCore
import WideEPDistributed

/// The `wide-ep` command: thin subcommands over the WideEP libraries.
@main
struct WideEP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wide-ep",
        abstract: "Large-scale expert parallelism and EPLB load balancing for MoE inference.",
        subcommands: [
            // Serving and layers.
            RunCommand.self,
            LayerCommand.self,
            // Offline EPLB: statistics, traces, planning, evaluation.
            PresetsCommand.self,
            StatsCommand.self,
            TraceCommand.self,
            PlanCommand.self,
            EvalCommand.self,
            BenchCommand.self,
            // Multi-process jobs.
            LaunchCommand.self,
            RendezvousCheckCommand.self,
            // GPUs.
            DoctorCommand.self,
            SelftestCommand.self,
        ]
    )

    /// Parses, runs and maps every failure to exit code 2 with one clear line on stderr (help exits 0).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version and the like.
                exit(withError: error)
            }
            if let exitCode = error as? ExitCode {
                // A command that already reported its outcome (e.g. selftest failures).
                Foundation.exit(exitCode.rawValue)
            }
            if let d = error as? DistributedError {
                // A lost peer or a timeout is a job failure, not bad input.
                if case .badEnvironment = d {} else {
                    FileHandle.standardError.write(Data("wide-ep: error: \(d)\n".utf8))
                    Foundation.exit(1)
                }
            }
            var message = fullMessage(for: error)
                .split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? "\(error)"
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            FileHandle.standardError.write(Data("wide-ep: error: \(message)\n".utf8))
            Foundation.exit(2)
        }
    }
}
