import Foundation
import Testing
import WideEPCPU
import WideEPCore
import WideEPRuntime
import WideEPTestSupport

@Suite struct CPUKernelTests {
    /// The grouped FFN against a naive per-row SwiGLU on random data, with row counts that leave partial tiles.
    @Test(arguments: [1, 2])
    func groupedFFNMatchesNaiveSwiGLU(workers: Int) throws {
        var g = SplitMix64(seed: 11)
        let h = 21, inter = 13, slots = 3
        let counts = [5, 0, 70]
        let n = counts.reduce(0, +)
        let k = CPUKernels(workers: workers)
        let x = (0..<(n * h)).map { _ in Float.random(in: -1...1, using: &g) }
        let w13 = (0..<(slots * 2 * inter * h)).map { _ in Float.random(in: -0.5...0.5, using: &g) }
        let w2 = (0..<(slots * h * inter)).map { _ in Float.random(in: -0.5...0.5, using: &g) }
        let xb = try k.allocate(.float32, count: x.count), yb = try k.allocate(.float32, count: n * h)
        let sb = try k.allocate(.float32, count: n * 2 * inter)
        let weights = SlotWeights(
            w13: try k.allocate(.float32, count: w13.count), w2: try k.allocate(.float32, count: w2.count),
            slotsPerRank: slots, hiddenSize: h, intermediateSize: inter)
        try x.withUnsafeBytes { try k.upload($0, to: xb, offset: 0) }
        for s in 0..<slots {
            try w13.withUnsafeBufferPointer { a in
                try w2.withUnsafeBufferPointer { b in
                    try k.writeSlot(
                        w13: UnsafeBufferPointer(rebasing: a[(s * 2 * inter * h)..<((s + 1) * 2 * inter * h)]),
                        w2: UnsafeBufferPointer(rebasing: b[(s * h * inter)..<((s + 1) * h * inter)]),
                        into: weights, localSlot: s)
                }
            }
        }
        try k.groupedFFN(x: xb, slotCounts: counts, weights: weights, scratch: sb, y: yb)
        var y = [Float](repeating: 0, count: n * h)
        try y.withUnsafeMutableBytes { try k.download(yb, offset: 0, into: $0) }
        var expected = [Float](repeating: 0, count: n * h)
        var row = 0
        for s in 0..<slots {
            for _ in 0..<counts[s] {
                var act = [Double](repeating: 0, count: inter)
                for i in 0..<inter {
                    var gsum = 0.0, usum = 0.0
                    for j in 0..<h {
                        gsum += Double(x[row * h + j]) * Double(w13[(s * 2 * inter + i) * h + j])
                        usum += Double(x[row * h + j]) * Double(w13[(s * 2 * inter + inter + i) * h + j])
                    }
                    act[i] = gsum / (1 + Foundation.exp(-gsum)) * usum
                }
                for o in 0..<h {
                    var sum = 0.0
                    for i in 0..<inter { sum += act[i] * Double(w2[(s * h + o) * inter + i]) }
                    expected[row * h + o] = Float(sum)
                }
                row += 1
            }
        }
        #expect(MoEMath.relativeError(y, expected) < 1e-5)
    }

    @Test func writeSlotRejectsWrongSizes() throws {
        let k = CPUKernels()
        let w = SlotWeights(w13: try k.allocate(.float32, count: 8), w2: try k.allocate(.float32, count: 4),
                            slotsPerRank: 1, hiddenSize: 2, intermediateSize: 2)
        let a = [Float](repeating: 1, count: 7), b = [Float](repeating: 1, count: 4)
        #expect(throws: PlacementError.self) {
            try a.withUnsafeBufferPointer { x in
                try b.withUnsafeBufferPointer { y in try k.writeSlot(w13: x, w2: y, into: w, localSlot: 0) }
            }
        }
    }
}
