import ArgumentParser
import Foundation
import WideEPCore

/// `wide-ep presets`: lists the built-in MoE configurations.
struct PresetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presets", abstract: "List the built-in MoE model presets.")

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        if json {
            try CLIOutput.printJSON(MoEConfig.presets)
            return
        }
        var rows = [["preset", "experts", "top-k", "groups", "shared", "hidden", "moe-inter", "layers", "scoring"]]
        for c in MoEConfig.presets {
            rows.append([
                c.name, "\(c.numExperts)", "\(c.topK)", "\(c.topKGroup)/\(c.numGroups)", "\(c.numShared)",
                "\(c.hiddenSize)", "\(c.moeIntermediateSize)", "\(c.numMoELayers)",
                c.scoring == .sigmoid ? "sigmoid+bias" : (c.normTopKProb ? "softmax(norm)" : "softmax"),
            ])
        }
        print(CLIOutput.table(rows))
    }
}
