import ArgumentParser

/// `wide-ep bench`: benchmarks, each printing ours next to the baseline with the ratio.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: planner speed, balance quality, MoE layer.",
        subcommands: [
            BenchPlanCommand.self,
            BenchQualityCommand.self,
            BenchMoECommand.self,
            BenchDispatchCommand.self,
            BenchCPUCommand.self,
            BenchSplitCommand.self,
            BenchLocalityCommand.self,
        ]
    )
}
