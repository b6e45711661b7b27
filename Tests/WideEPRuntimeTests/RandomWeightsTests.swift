import Testing
import WideEPCore
@testable import WideEPRuntime

/// Synthetic weights: reproducible from the seed, in range, and not one stream repeated across chunks or arrays.
@Suite struct RandomWeightsTests {
    @Test func chunkedFillIsReproducibleBoundedAndDistinctPerChunk() {
        let n = 2 * MoELayerWeights.randomChunk + 123
        let a = MoELayerWeights.randomFloats(count: n, bound: 0.5, seed: 9, stream: 1)
        let b = MoELayerWeights.randomFloats(count: n, bound: 0.5, seed: 9, stream: 1)
        #expect(a.count == n)
        #expect(a == b)
        #expect(a.allSatisfy { $0 >= -0.5 && $0 < 0.5 })
        let c = MoELayerWeights.randomFloats(count: n, bound: 0.5, seed: 9, stream: 2)
        let d = MoELayerWeights.randomFloats(count: n, bound: 0.5, seed: 10, stream: 1)
        #expect(a != c && a != d)
        // Chunks are independent streams, not copies of the first one.
        let k = MoELayerWeights.randomChunk
        #expect(Array(a[0..<64]) != Array(a[k..<(k + 64)]))
        #expect(Array(a[k..<(k + 64)]) != Array(a[(2 * k)..<(2 * k + 64)]))
        // Roughly uniform: mean near 0, mean square near bound² / 3.
        let mean = a.reduce(0.0) { $0 + Double($1) } / Double(n)
        let square = a.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
        #expect(abs(mean) < 0.01)
        #expect(abs(square - 0.25 / 3) < 0.005)
    }

    @Test func layerWeightsDependOnTheSeedOnly() throws {
        var config = MoEConfig.deepseekV3Mini
        config.hiddenSize = 32
        config.moeIntermediateSize = 16
        let x = MoELayerWeights.random(config: config, seed: 4)
        let y = MoELayerWeights.random(config: config, seed: 4)
        let z = MoELayerWeights.random(config: config, seed: 5)
        try x.validate()
        #expect(x.w13 == y.w13 && x.w2 == y.w2 && x.routerWeight == y.routerWeight)
        #expect(x.w13 != z.w13)
        // Each array has its own streams: W2 does not restart W13's numbers (scaled by another bound).
        let scale = Float(config.hiddenSize).squareRoot() / Float(config.moeIntermediateSize).squareRoot()
        #expect(Array(x.w2.prefix(16)) != x.w13.prefix(16).map { $0 * scale })
    }
}
