import Foundation
import Testing
import WideEPCore
import WideEPTestSupport
import WideEPWorkload

@Suite struct TrafficGeneratorTests {
    static let small: MoEConfig = {
        var c = MoEConfig.deepseekV3
        c.numMoELayers = 6
        return c
    }()

    /// Pearson correlation of two equally long vectors.
    static func correlation(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) { sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb) }
        return sab / (saa * sbb).squareRoot()
    }

    /// Hottest expert / mean, per layer of `loads` [L][E].
    static func hotRatios(_ loads: [[Double]]) -> [Double] {
        loads.map { row in row.max()! / (row.reduce(0, +) / Double(row.count)) }
    }

    static var realFiles: [String] {
        let dir = TestData.expertLoadDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { dir + "/" + $0 }
    }

    static func readProfile(_ path: String) throws -> [[Double]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (object["expert_load"] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
    }

    @Test func countsSumToTokensTimesTopKAndNeverExceedTokens() throws {
        let opts = TrafficOptions(steps: 5, tokensPerStep: 500, seed: 3, skew: 1.5, drift: 0.05)
        let trace = try TrafficGenerator(config: Self.small, options: opts).generate()
        #expect(trace.steps == 5 && trace.layers == 6 && trace.experts == 256)
        for t in 0..<5 {
            for row in trace.step(t) {
                #expect(row.reduce(0, +) == 500 * 8)
                #expect(row.allSatisfy { $0 >= 0 && $0 <= 500 && $0 == $0.rounded() })
            }
        }
    }

    @Test func sameSeedSameTraceDifferentSeedDifferentTrace() throws {
        let opts = TrafficOptions(steps: 4, tokensPerStep: 1000, seed: 9, drift: 0.03, shiftEvery: 2)
        let a = try TrafficGenerator(config: Self.small, options: opts).generate()
        let b = try TrafficGenerator(config: Self.small, options: opts).generate()
        var other = opts
        other.seed = 10
        let c = try TrafficGenerator(config: Self.small, options: other).generate()
        #expect(a == b)
        #expect(a != c)
        // Streaming gives the same steps as generate().
        var g = try TrafficGenerator(config: Self.small, options: opts)
        #expect(g.nextStep() == a.step(0))
        #expect(g.nextStep() == a.step(1))
    }

    @Test(.enabled(if: !TrafficGeneratorTests.realFiles.isEmpty, "needs the shared DeepSeek-R1 load files"))
    func defaultSkewMatchesTheRealDeepSeekR1Range() throws {
        let real = try Self.realFiles.flatMap { Self.hotRatios(try Self.readProfile($0)) }
        let lo = real.min()!, hi = real.max()!
        var config = MoEConfig.deepseekV3
        config.numMoELayers = 58
        let opts = TrafficOptions(steps: 20, tokensPerStep: 4096, seed: 1, drift: 0)
        let generated = Self.hotRatios(try TrafficGenerator(config: config, options: opts).generate().summed(steps: 0..<20))
        let sorted = generated.sorted()
        let median = sorted[sorted.count / 2]
        let realMedian = real.sorted()[real.count / 2]
        // The real hottest-expert ratios span about 2.6–13.5× with a median near 6.
        #expect(median >= lo && median <= hi, "generated median \(median) outside the real range \(lo)...\(hi)")
        #expect(abs(median - realMedian) / realMedian < 0.35, "median \(median) vs real \(realMedian)")
        #expect(sorted[sorted.count / 10] >= lo * 0.7 && sorted[sorted.count * 9 / 10] <= hi * 1.3)
        // Skew 0 is uniform: the hottest expert is only sampling noise above the mean.
        var flat = opts
        flat.skew = 0
        let uniform = Self.hotRatios(try TrafficGenerator(config: config, options: flat).generate().summed(steps: 0..<20))
        #expect(uniform.max()! < 1.2)
    }

    @Test func driftDecorrelatesPopularityOverTime() throws {
        func endCorrelation(_ drift: Double) throws -> Double {
            let opts = TrafficOptions(steps: 300, tokensPerStep: 20000, seed: 5, drift: drift)
            var config = Self.small
            config.numMoELayers = 1
            let trace = try TrafficGenerator(config: config, options: opts).generate()
            return Self.correlation(trace.summed(steps: 0..<20)[0], trace.summed(steps: 280..<300)[0])
        }
        let still = try endCorrelation(0), moving = try endCorrelation(0.05)
        #expect(still > 0.95)
        #expect(moving < still - 0.1, "drift 0.05 should decorrelate: \(moving) vs \(still)")
    }

    @Test func mixShiftsAreAbrupt() throws {
        var config = Self.small
        config.numMoELayers = 1
        let opts = TrafficOptions(steps: 40, tokensPerStep: 20000, seed: 2, drift: 0, shiftEvery: 10, numMixes: 2)
        let gen = try TrafficGenerator(config: config, options: opts)
        #expect((0..<40).map(gen.mix(atStep:)) == (0..<40).map { ($0 / 10) % 2 })
        let trace = gen.generate()
        let a = trace.summed(steps: 0..<10)[0], b = trace.summed(steps: 10..<20)[0], c = trace.summed(steps: 20..<30)[0]
        let across = Self.correlation(a, b), within = Self.correlation(a, c)
        #expect(within > 0.95)
        #expect(across < within - 0.2, "mixes should differ: across \(across), within \(within)")
    }

    @Test(.enabled(if: !TrafficGeneratorTests.realFiles.isEmpty, "needs the shared DeepSeek-R1 load files"))
    func realProfilesAreReproducedAndShiftBetween() throws {
        let prefill = try Self.readProfile(Self.realFiles.first { $0.contains("prefill_in4096") }!)
        let decode = try Self.readProfile(Self.realFiles.first { $0.contains("decode_in500") }!)
        let opts = TrafficOptions(steps: 20, tokensPerStep: 8192, seed: 4, skew: 1, drift: 0, shiftEvery: 10)
        let gen = try TrafficGenerator(profiles: [prefill, decode], topK: 8, options: opts)
        #expect(gen.numLayers == 58 && gen.numExperts == 256 && gen.options.numMixes == 2)
        let trace = gen.generate()
        for l in [0, 30, 57] {
            #expect(Self.correlation(trace.summed(steps: 0..<10)[l], prefill[l]) > 0.9)
            #expect(Self.correlation(trace.summed(steps: 10..<20)[l], decode[l]) > 0.9)
        }
    }

    @Test func badOptionsAndProfilesThrow() {
        #expect(throws: TrafficError.self) {
            try TrafficGenerator(config: Self.small, options: TrafficOptions(steps: 0))
        }
        #expect(throws: TrafficError.self) {
            try TrafficGenerator(config: Self.small, options: TrafficOptions(skew: -1))
        }
        #expect(throws: TrafficError.self) {
            try TrafficGenerator(config: Self.small, options: TrafficOptions(shiftEvery: -3))
        }
        #expect(throws: TrafficError.self) {
            try TrafficGenerator(profiles: [[[1, 2, 3]], [[1, 2]]], topK: 1, options: TrafficOptions())
        }
        #expect(throws: TrafficError.self) {
            try TrafficGenerator(profiles: [[[1, -2, 3]]], topK: 1, options: TrafficOptions())
        }
        #expect(throws: TrafficError.self) {
            try TrafficGenerator(profiles: [[[1, 2, 3]]], topK: 4, options: TrafficOptions())
        }
        let message = TrafficError.invalidOption(field: "steps", value: "0", expected: ">= 1").description
        #expect(message == "traffic option steps = 0 is invalid: expected >= 1")
    }
}
