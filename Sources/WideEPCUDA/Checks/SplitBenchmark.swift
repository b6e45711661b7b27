import Foundation
import CUDADriver
import WideEPCore

/// The GPU balanced split over a set of layers (placement + one batch's counts each): exactness against the CPU twin
/// and Core, and the time per layer of the GPU kernel, the previous serial kernel and Core's CPU split, measured in
/// one run.
public struct SplitBenchmark {
    /// One layer's input.
    public struct Case {
        /// The layer's placement.
        public let placement: Placement
        /// Tokens routed to each expert in the batch, int32 [E] (≥ 0).
        public let counts: [Int32]

        public init(placement: Placement, counts: [Int32]) {
            self.placement = placement
            self.counts = counts
        }
    }

    /// What the checks found over all cases.
    public struct Checks: Codable, Sendable {
        /// Cases checked.
        public var cases = 0
        /// Experts whose GPU quotas are negative or do not sum to the count.
        public var conservationErrors = 0
        /// Replicas whose GPU quota differs from the CPU twin's.
        public var twinMismatches = 0
        /// Replicas whose GPU quota differs from Core's balanced split.
        public var coreMismatches = 0
        /// Largest GPU max rank load / Core max rank load over the cases (≤ 1.01 required).
        public var worstPeakRatio = 0.0
        /// Mean levels (barriered rounds per pass) and passes of the schedule, from the twin.
        public var meanLevels = 0.0, meanPasses = 0.0, meanSteps = 0.0
    }

    /// Per-layer times in µs (each the median over repeats of the mean over all cases).
    public struct Timing: Codable, Sendable {
        /// New kernel, CUDA events around back-to-back launches (includes the host launch cost when it dominates).
        public var gpuEagerMicros: Double
        /// New kernel, CUDA graph of one launch per case, replayed (kernel time plus the gap between kernels).
        public var gpuGraphMicros: Double
        /// Previous serial kernel (warp 0 runs the passes), CUDA graph, same cases.
        public var serialGraphMicros: Double
        /// Core's allocation-free `ReplicaSplit.quotas(…, .balanced)` on this host, one thread.
        public var cpuMicros: Double
    }

    let gpu: GPU
    let kern: CUDAKernels
    let cases: [Case]
    let tables: [DeviceSplitTables]
    let counts: [DeviceArray<Int32>]
    let quotas: [DeviceArray<Int32>]

    /// Uploads every case's tables and counts (compiling the kernel for each new shape and group width).
    public init(gpu: GPU, cases: [Case]) throws {
        precondition(!cases.isEmpty, "at least one case")
        self.gpu = gpu
        self.cases = cases
        kern = CUDAKernels(gpu: gpu, config: .deepseekV3Mini)
        tables = try cases.map { try DeviceSplitTables(gpu: gpu, placement: $0.placement) }
        counts = try cases.map { try DeviceArray(gpu, $0.counts) }
        quotas = try cases.map { try DeviceArray<Int32>(gpu, count: $0.placement.numSlots) }
    }

    /// Runs every case once (outputs poisoned first) and compares with the twin and Core.
    public func check() throws -> Checks {
        var out = Checks()
        for i in cases.indices { try quotas[i].poison(gpu) }
        for i in cases.indices { try kern.balancedSplit(counts: counts[i], tables: tables[i], quotas: quotas[i]) }
        try gpu.synchronize()
        var levels = 0, passes = 0, steps = 0
        for (i, c) in cases.enumerated() {
            let pl = c.placement
            let got = try quotas[i].download(gpu)
            let twin = SplitReference.solve(counts: c.counts, tables: tables[i].tables, placement: pl)
            let core = ReplicaSplit.quotas(expertCounts: c.counts.map(Int.init), placement: pl, policy: .balanced)
            let perSlot = SplitTables.slotQuotas(replicaQuotas: got, placement: pl)
            out.conservationErrors += SplitCases.conservationErrors(replicaQuotas: got, counts: c.counts, placement: pl)
            out.twinMismatches += zip(got, twin.quotas).filter { $0.0 != $0.1 }.count
            out.coreMismatches += zip(perSlot, core).filter { Int($0.0) != $0.1 }.count
            let corePeak = ReplicaSplit.rankLoads(quotas: core, placement: pl).max() ?? 0
            let peak = Double(SplitCases.peak(replicaQuotas: got, placement: pl))
            out.worstPeakRatio = max(out.worstPeakRatio, corePeak > 0 ? peak / corePeak : (peak > 0 ? .infinity : 1))
            levels += twin.levels
            passes += twin.passes
            steps += twin.steps
        }
        out.cases = cases.count
        out.meanLevels = Double(levels) / Double(cases.count)
        out.meanPasses = Double(passes) / Double(cases.count)
        out.meanSteps = Double(steps) / Double(cases.count)
        return out
    }

    /// Times the kernels and the CPU split; `rounds` passes over all cases per sample, `repeats` samples.
    public func time(rounds: Int = 10, repeats: Int = 11) throws -> Timing {
        let n = Double(rounds * cases.count)
        let eager = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds {
                for i in cases.indices { try kern.balancedSplit(counts: counts[i], tables: tables[i], quotas: quotas[i]) }
            }
        }
        let graph = try CUDAGraph(stream: gpu.stream) {
            for i in cases.indices { try kern.balancedSplit(counts: counts[i], tables: tables[i], quotas: quotas[i]) }
        }
        let graphMs = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds { try graph.launch(on: gpu.stream) }
        }
        let serial = try CUDAGraph(stream: gpu.stream) {
            for i in cases.indices {
                try kern.balancedSplitSerial(counts: counts[i], tables: tables[i], quotas: quotas[i])
            }
        }
        let serialMs = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds { try serial.launch(on: gpu.stream) }
        }
        return Timing(
            gpuEagerMicros: eager * 1000 / n, gpuGraphMicros: graphMs * 1000 / n, serialGraphMicros: serialMs * 1000 / n,
            cpuMicros: cpuMicros(repeats: repeats))
    }

    /// Median over `repeats` of Core's allocation-free balanced split over all cases, µs per case.
    func cpuMicros(repeats: Int) -> Double {
        var scratch = ReplicaSplit.Scratch()
        var out = [Int32](repeating: 0, count: cases.map(\.placement.numSlots).max()!)
        let inner = max(1, 2000 / cases.count)
        var samples: [Double] = []
        for _ in 0..<(repeats + 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            out.withUnsafeMutableBufferPointer { o in
                for _ in 0..<inner {
                    for c in cases {
                        c.counts.withUnsafeBufferPointer { x in
                            ReplicaSplit.quotas(
                                expertCounts: x, placement: c.placement, policy: .balanced, scratch: &scratch,
                                into: UnsafeMutableBufferPointer(rebasing: o[0..<c.placement.numSlots]))
                        }
                    }
                }
            }
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000 / Double(inner * cases.count))
        }
        samples.removeFirst()  // warm-up
        samples.sort()
        return samples[samples.count / 2]
    }
}
