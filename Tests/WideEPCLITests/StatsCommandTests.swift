import Foundation
import Testing
import WideEPTestSupport
import WideEPWorkload

@Suite struct StatsCommandTests {
    /// The shared DeepSeek-R1 statistics: no balancing at EP32 gives mean imbalance ~1.05 (prefill_in512) up to ~2.0
    /// (decode_in500out1500), the range the data README states.
    @Test func realR1FilesShowTheKnownImbalanceAtEP32() throws {
        let dir = TestData.expertLoadDirectory
        var byName: [String: Double] = [:]
        for name in ["sglang_dsv3_prefill_in512", "sglang_dsv3_decode_in500out1500", "sglang_dsv3_decode_in2000out100",
                     "sglang_dsv3_prefill_in4096"] {
            let out = try CLI.json(["stats", dir + "/" + name + ".json", "--json"], in: dir)
            let summary = try #require(out["summary"] as? [String: Any])
            #expect(summary["epSize"] as? Int == 32)
            #expect((summary["layers"] as? [Any])?.count == 58)
            let range = try #require(summary["hottestRatioRange"] as? [Double])
            #expect(range[0] >= 2.5 && range[1] <= 14)
            byName[name] = try #require(summary.double("meanImbalance"))
        }
        let prefill = try #require(byName["sglang_dsv3_prefill_in512"])
        let decode = try #require(byName["sglang_dsv3_decode_in500out1500"])
        #expect(prefill > 1.0 && prefill < 1.15)
        #expect(decode > 1.9 && decode < 2.1)
        #expect(byName.values.allSatisfy { $0 > 1.0 && $0 < 2.1 })
    }

    @Test func tableNamesLayersByTheirModelIds() throws {
        let dir = TemporaryDirectory()
        let out = try CLI.ok(["stats", TestData.expertLoadDirectory + "/sglang_dsv3_prefill_in512.json", "--ep-size", "8"],
                             in: dir.path)
        let lines = out.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("3 ") })
        #expect(lines.contains { $0.hasPrefix("60 ") })
        #expect(out.contains("no balancing at EP8"))
    }

    @Test func perStepFileReportsRealizedImbalanceOfNoBalancing() throws {
        let dir = TemporaryDirectory()
        // Two steps that each load one rank only; their sum is balanced.
        let stats = try StatsFile(perStep: [[[6, 0, 0, 0]], [[0, 0, 0, 6]]])
        try stats.save(path: dir.file("s.safetensors"))
        let out = try CLI.json(["stats", "s.safetensors", "--ep-size", "2", "--json"], in: dir.path)
        let summary = try #require(out["summary"] as? [String: Any])
        #expect(summary.double("meanImbalance") == 0)
        let realized = try #require(summary["perStepImbalance"] as? [String: Any])
        #expect(realized.double("mean") == 1)  // ranks 6 and 0: (6 − 3)/3
        let first = try CLI.json(["stats", "s.safetensors", "--ep-size", "2", "--steps", "0:1", "--json"], in: dir.path)
        let firstSummary = try #require(first["summary"] as? [String: Any])
        #expect(firstSummary.double("meanImbalance") == 1)
        #expect(firstSummary["numSteps"] as? Int == 1)
    }
}
