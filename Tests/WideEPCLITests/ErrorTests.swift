import Foundation
import Testing
import WideEPCore
import WideEPTestSupport
import WideEPWorkload

/// Bad flags and bad files: exit code 2, one stderr line naming the problem, no output file left behind.
@Suite struct ErrorTests {
    /// A folder with a small per-step trace `t.safetensors` (4 layers × 8 experts) and a valid EP2 placement.
    static func fixture() throws -> TemporaryDirectory {
        let dir = TemporaryDirectory()
        var rng = SplitMix64(seed: 1)
        let steps = (0..<6).map { _ in (0..<4).map { _ in (0..<8).map { _ in Double(Int.random(in: 0...50, using: &rng)) } } }
        try StatsFile(perStep: steps).save(path: dir.file("t.safetensors"))
        let p = try Placement.identity(numExperts: 8, numRanks: 2)
        try PlacementFile(placements: [p, p, p, p]).save(path: dir.file("ok.yaml"))
        return dir
    }

    static func expectNoNewFiles(_ dir: TemporaryDirectory, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(dir.entries == ["ok.yaml", "t.safetensors"], sourceLocation: sourceLocation)
    }

    @Test func badStatsFiles() throws {
        let dir = try Self.fixture()
        try CLI.fails(["stats", "missing.json"], in: dir.path, with: ["missing.json", "no such file"])
        dir.write("bad.json", text: #"{"expert_load": [[1, 2], [3]]}"#)
        try CLI.fails(["stats", "bad.json"], in: dir.path, with: ["bad.json", "expert_load[1] has 1 entries, expected 2"])
        dir.write("neg.json", text: #"{"expert_load": [[1, -2]]}"#)
        try CLI.fails(["plan", "--stats", "neg.json", "--ep-size", "1", "--num-slots", "2", "--output", "o.yaml"],
                      in: dir.path, with: ["neg.json", "expert_load[0][1] = -2.0"])
        dir.write("trunc.safetensors", text: "abc")
        try CLI.fails(["eval", "--placement", "ok.yaml", "--stats", "trunc.safetensors"], in: dir.path,
                      with: ["trunc.safetensors", "truncated"])
        try CLI.fails(["stats", "t.safetensors", "--ep-size", "3"], in: dir.path, with: ["--ep-size 3", "expert count 8"])
        for f in ["bad.json", "neg.json", "trunc.safetensors"] { try FileManager.default.removeItem(atPath: dir.file(f)) }
        Self.expectNoNewFiles(dir)
    }

    @Test func badPlanRequests() throws {
        let dir = try Self.fixture()
        let base = ["plan", "--stats", "t.safetensors", "--output", "out.yaml"]
        try CLI.fails(base + ["--ep-size", "4", "--num-slots", "10"], in: dir.path, with: ["slot count 10", "ep-size 4"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "6"], in: dir.path, with: ["smaller than the expert count 8"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "8", "--policy", "best"], in: dir.path,
                      with: ["'best'", "none", "balanced"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "10", "--policy", "none"], in: dir.path,
                      with: ["policy none", "expert count 8"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "8", "--nodes", "3"], in: dir.path, with: ["node count 3"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "8", "--decay", "1.5"], in: dir.path, with: ["--decay"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "8", "--steps", "4:99"], in: dir.path, with: ["outside 0..<6"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "8", "--preset", "mixtral-8x7b", "--config", "c.json"],
                      in: dir.path, with: ["either --preset or --config"])
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "8", "--preset", "deepseek-v3-mini"], in: dir.path,
                      with: ["8 experts", "deepseek-v3-mini has 64"])
        try CLI.fails(["plan", "--stats", "t.safetensors", "--ep-size", "2", "--num-slots", "8"], in: dir.path,
                      with: ["--output"])
        dir.write("oob.yaml", text: "num_slots: 8\ninitial_global_assignments:\n" + (0..<4).map { "  \($0): [0, 1, 2, 3, 4, 5, 6, 9]" }.joined(separator: "\n"))
        try CLI.fails(base + ["--ep-size", "2", "--num-slots", "8", "--current", "oob.yaml"], in: dir.path,
                      with: ["oob.yaml", "layer 0", "expert 9", "0..<8"])
        try FileManager.default.removeItem(atPath: dir.file("oob.yaml"))
        Self.expectNoNewFiles(dir)
    }

    @Test func badEvalInputs() throws {
        let dir = try Self.fixture()
        try CLI.fails(["eval", "--placement", "ok.yaml", "--stats", "t.safetensors", "--ep-size", "4"], in: dir.path,
                      with: ["ok.yaml", "ep_size is 2 but 4 was given"])
        try CLI.fails(["eval", "--placement", "ok.yaml", "--stats", "t.safetensors", "--split", "random"], in: dir.path,
                      with: ["'random'", "even", "balanced"])
        let p = try Placement.identity(numExperts: 8, numRanks: 2)
        try PlacementFile(placements: [p, p]).save(path: dir.file("two.yaml"))
        try CLI.fails(["eval", "--placement", "two.yaml", "--stats", "t.safetensors"], in: dir.path,
                      with: ["two.yaml has 2 layers", "4"])
        dir.write("bare.yaml", text: "num_slots: 8\ninitial_global_assignments:\n  0: [0, 1, 2, 3, 4, 5, 6, 7]\n")
        try CLI.fails(["eval", "--placement", "bare.yaml", "--stats", "t.safetensors"], in: dir.path, with: ["pass --ep-size"])
        dir.write("broken.yaml", text: "num_slots: [8\n")
        try CLI.fails(["eval", "--placement", "broken.yaml", "--stats", "t.safetensors", "--ep-size", "2"], in: dir.path,
                      with: ["broken.yaml", "invalid YAML"])
        for f in ["two.yaml", "bare.yaml", "broken.yaml"] { try FileManager.default.removeItem(atPath: dir.file(f)) }
        Self.expectNoNewFiles(dir)
    }

    @Test func badTraceOptions() throws {
        let dir = try Self.fixture()
        let base = ["trace", "generate", "--output", "new.safetensors"]
        try CLI.fails(base + ["--preset", "gpt-5"], in: dir.path, with: ["unknown preset 'gpt-5'", "deepseek-v3"])
        try CLI.fails(base + ["--preset", "deepseek-v3-mini", "--set", "bogus=1"], in: dir.path, with: ["unknown config field 'bogus'"])
        try CLI.fails(base + ["--preset", "deepseek-v3-mini", "--set", "topK"], in: dir.path, with: ["--set expects FIELD=VALUE"])
        try CLI.fails(base + ["--preset", "deepseek-v3-mini", "--steps", "0"], in: dir.path, with: ["--steps must be >= 1"])
        try CLI.fails(base + ["--preset", "deepseek-v3-mini", "--skew", "9"], in: dir.path, with: ["--skew must be in 0...4"])
        try CLI.fails(base, in: dir.path, with: ["no model given", "--preset"])
        try CLI.fails(base + ["--preset", "deepseek-v3-mini", "--from-stats", "t.safetensors"], in: dir.path,
                      with: ["t.safetensors has 4 layers × 8 experts", "deepseek-v3-mini"])
        try CLI.fails(["trace", "generate", "--preset", "deepseek-v3-mini", "--steps", "2", "--output", "nodir/x.json"],
                      in: dir.path, with: ["nodir/x.json", "cannot write"])
        try CLI.fails(base + ["--preset", "deepseek-v3-mini", "--frobnicate"], in: dir.path,
                      with: ["--frobnicate"])
        Self.expectNoNewFiles(dir)
    }

    @Test func configFileFeedsTraceGenerate() throws {
        let dir = try Self.fixture()
        dir.write("config.json", text: """
            {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128, "num_local_experts": 8,
             "num_experts_per_tok": 2, "num_hidden_layers": 3}
            """)
        try CLI.ok(["trace", "generate", "--config", "config.json", "--set", "numMoELayers=2", "--steps", "3",
                    "--tokens-per-step", "10", "--output", "c.json"], in: dir.path)
        let t = try StatsFile.load(path: dir.file("c.json"))
        #expect(t.numLayers == 2 && t.numExperts == 8)
        #expect(t.perStep!.allSatisfy { $0.allSatisfy { $0.reduce(0, +) == 20 } })
        dir.write("bad-config.json", text: #"{"model_type": "llama"}"#)
        try CLI.fails(["trace", "generate", "--config", "bad-config.json", "--output", "d.json"], in: dir.path,
                      with: ["bad-config.json", "model_type 'llama'"])
        #expect(!FileManager.default.fileExists(atPath: dir.file("d.json")))
    }
}
