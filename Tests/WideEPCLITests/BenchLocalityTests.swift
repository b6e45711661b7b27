import Foundation
import Testing
import WideEPTestSupport

@Suite struct BenchLocalityTests {
    /// On real R1 loads local-first serves more pairs on their own rank than prefix order, reaches the bound, and
    /// every replica still receives exactly its quota.
    @Test func localFirstBeatsPrefixOrderOnR1LoadsAndReachesTheBound() throws {
        let dir = TestData.expertLoadDirectory
        let out = try CLI.json(
            ["bench", "locality", "--stats-json", dir + "/sglang_dsv3_decode_in2000out100.json", "--layers", "3",
             "--ep-sizes", "8,32", "--tokens", "64", "--samples", "1", "--json"], in: dir)
        let rows = try #require(out["rows"] as? [[String: Any]])
        #expect(rows.count == 2)
        for r in rows {
            let pairs = try #require(r["pairs"] as? Int)
            let lf = try #require(r["localFirstLocal"] as? Int), po = try #require(r["prefixOrderLocal"] as? Int)
            #expect(pairs == (r["epSize"] as? Int ?? 0) * 64 * 8 * 3)
            #expect(lf > po)
            #expect(lf == r["maxLocal"] as? Int)
            #expect((r["localFirstRemoteRows"] as? Int ?? .max) < (r["prefixOrderRemoteRows"] as? Int ?? 0))
            #expect(r["quotaMismatches"] as? Int == 0)
        }
    }

    @Test func badEPSizesFailWithOneLine() throws {
        let dir = TemporaryDirectory()
        try CLI.fails(["bench", "locality", "--ep-sizes", "8,x"], in: dir.path, with: ["--ep-sizes", "'8,x'"])
        try CLI.fails(["bench", "locality", "--ep-sizes", "0"], in: dir.path, with: ["--ep-sizes"])
    }
}
