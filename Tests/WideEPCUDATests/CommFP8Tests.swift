import CUDADriver
import Foundation
import Testing
import WideEPRuntime
@testable import WideEPCUDA

@Suite("Multi-GPU communication: FP8 e4m3 twin, test data, store collectives")
struct CommFP8Tests {
    /// Reference: the nearest of all finite codes by exhaustive search, ties to the even code, saturating.
    static func nearest(_ x: Float) -> UInt8 {
        if abs(x) >= 448 { return (x < 0 ? 0x80 : 0) | 0x7E }
        var best: UInt8 = 0
        var bestErr = Float.infinity
        for c in 0..<256 {
            let code = UInt8(c)
            let v = FP8E4M3.decode(code)
            if v.isNaN || (v == 0 && code == 0x80) { continue }
            let err = abs(v - x)
            if err < bestErr || (err == bestErr && code & 1 == 0 && best & 1 == 1) {
                best = code
                bestErr = err
            }
        }
        if x < 0 && best == 0 { best = 0x80 }
        return best
    }

    @Test func decodeKnownCodes() {
        #expect(FP8E4M3.decode(0x38) == 1)
        #expect(FP8E4M3.decode(0x7E) == 448)
        #expect(FP8E4M3.decode(0x01) == 0x1p-9)
        #expect(FP8E4M3.decode(0x08) == 0x1p-6)
        #expect(FP8E4M3.decode(0xB8) == -1)
        #expect(FP8E4M3.decode(0x7F).isNaN)
    }

    @Test func encodeRoundTripsEveryFiniteCode() {
        for c in 0..<256 where c & 0x7F != 0x7F {
            #expect(FP8E4M3.encode(FP8E4M3.decode(UInt8(c))) == UInt8(c) || c == 0x80)
        }
    }

    @Test func encodeMatchesExhaustiveNearestOnRandomValues() {
        var s: UInt64 = 99
        for i in 0..<4000 {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Float(s >> 40) * 0x1p-24
            // Span subnormals, normals and past the largest finite value.
            let mag = Float(pow(2.0, Double(u) * 20 - 11))
            let x = (i % 2 == 0 ? 1 : -1) * mag
            #expect(FP8E4M3.encode(x) == Self.nearest(x), "x = \(x)")
        }
        // Exact midpoints go to the even code: 1 + 1/16 lies between 0x38 (1) and 0x39 (1.125).
        #expect(FP8E4M3.encode(1.0625) == 0x38)
        #expect(FP8E4M3.encode(1.1875) == 0x3A)
        #expect(FP8E4M3.encode(1000) == 0x7E)
    }

    @Test func groupQuantisationErrorIsBoundedByHalfAStep() {
        var s: UInt64 = 5
        let row = (0..<512).map { i -> Float in
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(s >> 40) * 0x1p-24 - 0.5) * Float(1 << (i / 128))
        }
        let (codes, scales) = FP8E4M3.quantize(row)
        #expect(scales.count == 4)
        let back = FP8E4M3.dequantize(codes: codes, scales: scales)
        for g in 0..<4 {
            let amax = row[(g * 128)..<((g + 1) * 128)].map(abs).max()!
            #expect(abs(scales[g] - amax / 448) <= 1e-6 * amax)
            for i in (g * 128)..<((g + 1) * 128) {
                // e4m3 has 3 mantissa bits: relative step 1/8, so half a step is ≤ 1/16 of the value's binade.
                #expect(abs(back[i] - row[i]) <= max(abs(row[i]) / 16, amax / 448 * 0x1p-9) + 1e-7)
            }
        }
    }

    @Test func testDataIsDeterministicWithDistinctExpertsAndNormalisedWeights() {
        let shape = EPShape(ranks: 2, hidden: 256, experts: 16, topK: 4, maxTokens: 8, lowLatencyTokens: 8)
        let a = EPTestData(shape: shape, rank: 1, tokens: 5, seed: 3), b = EPTestData(shape: shape, rank: 1, tokens: 5, seed: 3)
        let c = EPTestData(shape: shape, rank: 0, tokens: 5, seed: 3)
        #expect(a.hidden == b.hidden && a.topk == b.topk && a.weights == b.weights)
        #expect(a.hidden != c.hidden)
        for t in 0..<5 {
            let ex = a.topk[(t * 4)..<((t + 1) * 4)]
            #expect(Set(ex).count == 4 && ex.allSatisfy { $0 >= 0 && $0 < 16 })
            #expect(abs(a.weights[(t * 4)..<((t + 1) * 4)].reduce(0, +) - 1) < 1e-5)
        }
        #expect(a.wireRow(0, shape: shape, fp8: false).count == 512)
        #expect(a.wireRow(0, shape: shape, fp8: true).count == 256 + 8)
        // The FP8 expert output is the dequantised row times the factor, rounded to bf16.
        let y = a.expertOutput(2, shape: shape, fp8: false, factor: 3)
        let x = a.row(2, hidden: 256)
        #expect(zip(x, y).allSatisfy { abs($0 * 3 - $1) <= abs($0 * 3) / 128 })
    }

    final class MemoryStore: CommStore {
        var values: [String: [UInt8]] = [:]
        let cond = NSCondition()
        func set(_ key: String, _ value: [UInt8]) throws {
            cond.lock(); values[key] = value; cond.broadcast(); cond.unlock()
        }
        func get(_ key: String, timeout: Double?) throws -> [UInt8] {
            cond.lock()
            defer { cond.unlock() }
            let deadline = Date().addingTimeInterval(timeout ?? 10)
            while values[key] == nil {
                if !cond.wait(until: deadline) { throw CommunicatorError.aborted("timeout on \(key)") }
            }
            return values[key]!
        }
    }

    @Test func storeCollectivesGatherAndSumInRankOrder() throws {
        let store = MemoryStore()
        final class Results: @unchecked Sendable {  // appended under `lock` by the rank threads
            let lock = NSLock()
            var pairs: [[[Int]]] = []
        }
        let results = Results()
        let done = DispatchGroup()
        for r in 0..<3 {
            done.enter()
            // Real threads: the three ranks block on each other, so a pool narrower than 3 would deadlock.
            Thread {
                defer { done.leave() }
                let c = StoreCollectives(store: store, rank: r, size: 3, name: "t")
                guard let g = try? c.allGather([Int32(r), Int32(10 * r)]), let s = try? c.allReduceSum([Double(r), 0.5])
                else { return }
                let pair = [g.map(Int.init), s.map { Int($0 * 2) }]
                results.lock.lock(); results.pairs.append(pair); results.lock.unlock()
            }.start()
        }
        done.wait()
        for pair in results.pairs {
            #expect(pair[0] == [0, 0, 1, 10, 2, 20])
            #expect(pair[1] == [6, 3])
        }
        #expect(results.pairs.count == 3)
    }

    @Test func communicatorsReportUnavailableCUDACleanly() throws {
        // NCCL may or may not be installed; when it is not, the error names the library and where it was looked for.
        do { _ = try NCCLSymbols.load() } catch { #expect("\(error)".contains("libnccl.so.2")) }
        if CUDADriver.CUDA.isAvailable { return }
        #expect(throws: (any Error).self) { try IPCSymbols.load() }
        #expect(throws: (any Error).self) { try GPU(ordinal: 0) }
        do {
            _ = try IPCSymbols.load()
        } catch {
            #expect(!"\(error)".isEmpty && "\(error)".contains("libcuda"))
        }
    }
}
