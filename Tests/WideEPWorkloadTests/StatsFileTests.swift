import Foundation
import Testing
import WideEPCore
import WideEPTestSupport
@testable import WideEPWorkload

@Suite struct StatsFileTests {
    /// Random integer counts, [steps][layers][experts].
    static func randomSteps(_ steps: Int, _ layers: Int, _ experts: Int, seed: UInt64) -> [[[Double]]] {
        var rng = SplitMix64(seed: seed)
        return (0..<steps).map { _ in
            (0..<layers).map { _ in (0..<experts).map { _ in Double(Int.random(in: 0...500, using: &rng)) } }
        }
    }

    static let meta = StatsMetadata(
        model: "deepseek-r1", epSize: 32, stepRange: 100..<105, workload: "decode", source: "unit test",
        layerIds: [3, 4, 5])

    @Test(arguments: ["s.json", "s.safetensors"])
    func perStepStatsRoundTrip(name: String) throws {
        let dir = TemporaryDirectory()
        let stats = try StatsFile(perStep: Self.randomSteps(5, 3, 16, seed: 3), metadata: Self.meta)
        try stats.save(path: dir.file(name))
        let back = try StatsFile.load(path: dir.file(name))
        #expect(back.perStep == stats.perStep)
        #expect(back.totals == stats.totals)
        #expect(back.metadata == Self.meta)
        #expect(back.numSteps == 5 && back.numLayers == 3 && back.numExperts == 16)
    }

    @Test(arguments: ["t.json", "t.safetensors"])
    func totalsRoundTripWithFractionalCounts(name: String) throws {
        let dir = TemporaryDirectory()
        var rng = SplitMix64(seed: 9)
        let totals = (0..<4).map { _ in (0..<8).map { _ in Double.random(in: 0...1000, using: &rng) } }
        let stats = try StatsFile(totals: totals, metadata: StatsMetadata(model: "m"))
        try stats.save(path: dir.file(name))
        let back = try StatsFile.load(path: dir.file(name))
        #expect(back.perStep == nil)
        // Safetensors is bit-exact; Foundation's JSON number parser can be off in the last bit.
        for (a, b) in zip(back.totals.flatMap { $0 }, totals.flatMap { $0 }) {
            #expect(name.hasSuffix(".json") ? abs(a - b) <= 1e-12 * b : a == b)
        }
        #expect(back.metadata.model == "m")
    }

    @Test(arguments: [SafeTensorsDType.i32, .i64, .u16, .f16, .bf16, .f32, .f64])
    func readsExpertLoadInAnyNumericDType(dtype: SafeTensorsDType) throws {
        let dir = TemporaryDirectory()
        let steps = Self.randomSteps(2, 2, 4, seed: 11).map { $0.map { $0.map { $0.truncatingRemainder(dividingBy: 200) } } }
        let stats = try StatsFile(perStep: steps)
        try stats.save(path: dir.file("d.safetensors"), dtype: dtype)
        let f = try SafeTensorsFile(path: dir.file("d.safetensors"))
        #expect(try f.tensor(named: "expert_load").dtype == dtype)
        #expect(try StatsFile.load(path: dir.file("d.safetensors")).perStep == steps)
    }

    @Test func sniffsFormatWithoutExtension() throws {
        let dir = TemporaryDirectory()
        let stats = try StatsFile(totals: [[1, 2], [3, 4]])
        try stats.save(path: dir.file("a.safetensors"))
        try stats.save(path: dir.file("a.json"))
        try FileManager.default.moveItem(atPath: dir.file("a.safetensors"), toPath: dir.file("noext1"))
        try FileManager.default.moveItem(atPath: dir.file("a.json"), toPath: dir.file("noext2"))
        #expect(try StatsFile.load(path: dir.file("noext1")).totals == [[1, 2], [3, 4]])
        #expect(try StatsFile.load(path: dir.file("noext2")).totals == [[1, 2], [3, 4]])
        // A JSON text whose ninth byte is a brace, like a safetensors header, is still JSON.
        dir.write("brace", text: #"{"abcd":{},"expert_load":[[1,2]]}"#)
        #expect(try StatsFile.load(path: dir.file("brace")).totals == [[1, 2]])
        dir.write("junk", text: "hello")
        expectError(["junk", "unknown stats format"]) { _ = try StatsFile.load(path: dir.file("junk")) }
    }

    @Test func decayedTotalsMatchLoadStatistics() throws {
        let steps = Self.randomSteps(7, 3, 5, seed: 5)
        let stats = try StatsFile(perStep: steps)
        var online = LoadStatistics(numLayers: 3, numExperts: 5, windowSize: 10, decay: 0.8)
        for s in steps { online.record(step: s.flatMap { $0 }) }
        let ours = stats.decayedTotals(decay: 0.8)
        for (a, b) in zip(ours.flatMap { $0 }, online.decayedLoads.flatMap { $0 }) { #expect(abs(a - b) <= 1e-9 * max(1, b)) }
        #expect(stats.decayedTotals(decay: 1) == stats.totals)
    }

    @Test func selectsStepRanges() throws {
        let steps = Self.randomSteps(6, 2, 3, seed: 6)
        let stats = try StatsFile(perStep: steps, metadata: StatsMetadata(stepRange: 10..<16))
        let half = try stats.steps(3..<6)
        #expect(half.perStep == Array(steps[3..<6]))
        #expect(half.metadata.stepRange == 13..<16)
        expectError(["outside 0..<6"]) { _ = try stats.steps(4..<9) }
        expectError(["no per-step axis"]) { _ = try StatsFile(totals: [[1]]).steps(0..<1) }
    }

    // MARK: Errors

    @Test func rejectsMalformedJSON() {
        let dir = TemporaryDirectory()
        let p = dir.write("bad.json", text: #"{"expert_load": [[1, 2], [3, 4]"#)
        expectError(["bad.json", "malformed JSON"]) { _ = try StatsFile.load(path: p) }
        let top = dir.write("top.json", text: "[1, 2]")
        expectError(["top.json", "expected an object"]) { _ = try StatsFile.load(path: top) }
    }

    @Test func rejectsRaggedArrays() {
        let dir = TemporaryDirectory()
        let p = dir.write("r.json", text: #"{"expert_load": [[1, 2, 3], [4, 5]]}"#)
        expectError(["r.json", "expert_load[1] has 2 entries, expected 3", "ragged"]) { _ = try StatsFile.load(path: p) }
        let p3 = dir.write("r3.json", text: #"{"expert_load": [[[1, 2]], [[1, 2], [3, 4]]]}"#)
        expectError(["expert_load[1] has 2 entries, expected 1"]) { _ = try StatsFile.load(path: p3) }
    }

    @Test func rejectsWrongRankAndShape() throws {
        let dir = TemporaryDirectory()
        let p = dir.write("v.json", text: #"{"expert_load": [1, 2, 3]}"#)
        expectError(["v.json", "shape [3]", "[layers, experts] or [iterations, layers, experts]"]) {
            _ = try StatsFile.load(path: p)
        }
        var w = SafeTensorsWriter()
        try w.add(name: "expert_load", shape: [2, 2, 2, 2], values: [Double](repeating: 1, count: 16), as: .f32)
        try w.write(to: dir.file("r4.safetensors"))
        expectError(["r4.safetensors", "shape [2, 2, 2, 2]"]) { _ = try StatsFile.load(path: dir.file("r4.safetensors")) }
        var z = SafeTensorsWriter()
        try z.add(name: "expert_load", shape: [0, 4], values: [], as: .i32)
        try z.write(to: dir.file("z.safetensors"))
        expectError(["shape [0, 4]"]) { _ = try StatsFile.load(path: dir.file("z.safetensors")) }
    }

    @Test func rejectsNegativeAndNaNCounts() throws {
        let dir = TemporaryDirectory()
        let p = dir.write("n.json", text: #"{"expert_load": [[1, 2], [3, -4]]}"#)
        expectError(["n.json", "expert_load[1][1] = -4.0", "finite and >= 0"]) { _ = try StatsFile.load(path: p) }
        var w = SafeTensorsWriter()
        try w.add(name: "expert_load", shape: [1, 2, 2], values: [1, 2, .nan, 4], as: .f32)
        try w.write(to: dir.file("nan.safetensors"))
        expectError(["nan.safetensors", "expert_load[0][1][0] = nan"]) { _ = try StatsFile.load(path: dir.file("nan.safetensors")) }
        expectError(["expert_load[0][1]"]) { _ = try StatsFile(totals: [[1, .infinity]]) }
    }

    @Test func rejectsNonNumbersAndMissingKeys() throws {
        let dir = TemporaryDirectory()
        let s = dir.write("s.json", text: #"{"expert_load": [[1, "2"]]}"#)
        expectError(["expert_load[0][1] is a string, expected a number"]) { _ = try StatsFile.load(path: s) }
        let b = dir.write("b.json", text: #"{"expert_load": [[1, true]]}"#)
        expectError(["expert_load[0][1] is a boolean"]) { _ = try StatsFile.load(path: b) }
        let m = dir.write("m.json", text: #"{"counts": [[1]]}"#)
        expectError(["m.json", "no expert_load", "counts"]) { _ = try StatsFile.load(path: m) }
        var w = SafeTensorsWriter()
        try w.add(name: "other", shape: [1], values: [1], as: .f32)
        try w.write(to: dir.file("o.safetensors"))
        expectError(["no expert_load", "other"]) { _ = try StatsFile.load(path: dir.file("o.safetensors")) }
        expectError(["absent.json", "no such file"]) { _ = try StatsFile.load(path: dir.file("absent.json")) }
    }

    @Test func rejectsMetadataThatContradictsTheShape() {
        let dir = TemporaryDirectory()
        let e = dir.write("e.json", text: #"{"num_experts": 3, "expert_load": [[1, 2]]}"#)
        expectError(["num_experts", "2 experts"]) { _ = try StatsFile.load(path: e) }
        let l = dir.write("l.json", text: #"{"layers": [3, 4], "expert_load": [[1, 2]]}"#)
        expectError(["layers", "2 layer ids", "1 layers"]) { _ = try StatsFile.load(path: l) }
        let r = dir.write("r.json", text: #"{"step_range": [0, 5], "expert_load": [[[1, 2]]]}"#)
        expectError(["step_range", "covers 5 steps", "has 1"]) { _ = try StatsFile.load(path: r) }
    }

    @Test func readsTheSharedDeepSeekR1Files() throws {
        let dir = TestData.expertLoadDirectory
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".json") }.sorted()
        #expect(names.count == 4)
        for n in names {
            let s = try StatsFile.load(path: dir + "/" + n)
            #expect(s.numLayers == 58 && s.numExperts == 256 && s.perStep == nil)
            #expect(s.metadata.layerIds == Array(3...60))
            #expect(s.metadata.source?.contains("sglang") == true)
            #expect(s.totals.allSatisfy { $0.reduce(0, +) > 0 })
        }
    }
}
