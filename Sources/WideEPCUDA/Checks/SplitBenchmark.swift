import Foundation
import CUDADriver
import WideEPCore

/// The GPU balanced split over a set of layers (placement + one batch's counts each): identity with the CPU twin,
/// max rank load against Core's (and identity with Core in `.core` stop), and the time per layer of the GPU kernel
/// (one warp, the chosen stop and Core's), the previous kernels (level-parallel block, serial) and Core's CPU split,
/// measured in one run.
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
        /// Replicas whose GPU quota differs from the CPU twin's (both with the benchmark's stop, and with `.core`).
        public var twinMismatches = 0
        /// Replicas whose GPU quota differs from Core's balanced split (expected with a certified stop: the quotas
        /// differ, the max rank load stays within its limit).
        public var coreMismatches = 0
        /// Replicas whose GPU quota with `.core` stop differs from Core's balanced split (must be 0).
        public var exactCoreMismatches = 0
        /// Replicas whose quota from the previous level-parallel kernel differs from Core's.
        public var levelsMismatches = 0
        /// Cases run by the one-warp kernel (the others fall back to the level-parallel one).
        public var warpCases = 0
        /// Largest and mean GPU max rank load / Core max rank load over the cases (≤ 1.01 required on every case).
        public var worstPeakRatio = 0.0, meanPeakRatio = 0.0
        /// Mean levels (barriered rounds per pass, of the last schedule), passes and rounds (levels × passes, both
        /// schedules) per case, from the twin.
        public var meanLevels = 0.0, meanPasses = 0.0, meanSteps = 0.0, meanRounds = 0.0
        /// Cases whose certified passes ended uncertified and ran Core's schedule after them (twin).
        public var fallbacks = 0
        /// The first case whose GPU quotas differ from the twin's: slot table, counts, GPU and twin quotas.
        public var firstMismatch: String?
    }

    /// In-kernel profile of the new kernel, means per launch (SM cycles from `clock64`, time from `%globaltimer`).
    public struct Profile: Codable, Sendable {
        /// SM cycles from entry to the end of the prologue (tables in, order, levels, buckets).
        public var prologueCycles: Double
        /// SM cycles from entry to the last store.
        public var totalCycles: Double
        /// Effective SM clock over the launches, MHz (cycles / ns).
        public var clockMHz: Double
        /// Passes and levels (of the last schedule) per launch.
        public var passes: Double, levels: Double
        /// Launches whose certified passes fell back to Core's schedule.
        public var fallbacks: Double
        /// Global-timer ns from entry to the last store, per launch.
        public var nanos: Double
        /// Launches the counters saw (0: nothing was recorded, and the other fields mean nothing).
        public var launches: Double
        /// The six counter words as read back (sums over the launches), for checking the means above.
        public var raw: [UInt64]

        /// Means per launch from the kernel's six summed counter words: prologue cycles, total cycles, global-timer
        /// ns, launches, passes, and levels plus 2^32 per fallback.
        public init(counters raw: [UInt64]) {
            precondition(raw.count == 6, "the split profile has 6 counter words, got \(raw.count)")
            // `raw.map(Double.init)` would pick `Double(bitPattern:)` for UInt64 and read every count as a denormal.
            let p = raw.map { Double($0) }, n = max(p[3], 1)
            prologueCycles = p[0] / n
            totalCycles = p[1] / n
            clockMHz = p[1] / max(p[2], 1) * 1000
            passes = p[4] / n
            levels = Double(raw[5] & 0xffff_ffff) / n
            fallbacks = Double(raw[5] >> 32)
            nanos = p[2] / n
            launches = p[3]
            self.raw = raw
        }
    }

    /// Per-layer times in µs (each the median over repeats of the mean over all cases).
    public struct Timing: Codable, Sendable {
        /// New kernel, CUDA events around back-to-back launches (includes the host launch cost when it dominates).
        public var gpuEagerMicros: Double
        /// New kernel, CUDA graph of one launch per case, replayed (kernel time plus the gap between kernels).
        public var gpuGraphMicros: Double
        /// The same kernel with `.core` stop (Core's schedule, identical quotas: the kernel before the certified
        /// schedule), CUDA graph, same cases.
        public var coreStopGraphMicros: Double
        /// Previous level-parallel kernel (whole block, a barrier per level), CUDA graph, same cases.
        public var levelsGraphMicros: Double
        /// First serial kernel (warp 0 runs the passes one expert at a time), CUDA graph, same cases.
        public var serialGraphMicros: Double
        /// `split_floor` (one block reads one count, writes one quota), CUDA graph of as many launches: the floor.
        public var floorGraphMicros: Double
        /// The same graphs while `split_busy` keeps 64 SMs busy on another stream (serving clocks).
        public var gpuGraphLoadedMicros: Double, levelsGraphLoadedMicros: Double, serialGraphLoadedMicros: Double
        /// Core's allocation-free `ReplicaSplit.quotas(…, .balanced)` on this host, one thread.
        public var cpuMicros: Double
        /// In-kernel profile on the idle card and on the loaded one.
        public var profile: Profile, loadedProfile: Profile
    }

    let gpu: GPU
    let kern: CUDAKernels
    /// The stop of the timed and checked kernel (`.core` is also checked and timed beside it).
    let stop: SplitStop
    let cases: [Case]
    let tables: [DeviceSplitTables]
    let counts: [DeviceArray<Int32>]
    let quotas: [DeviceArray<Int32>]

    /// Uploads every case's tables and counts (compiling the kernel for each new shape and group width); `stop` is the
    /// one-warp kernel's stop under test.
    public init(gpu: GPU, cases: [Case], stop: SplitStop = .default) throws {
        precondition(!cases.isEmpty, "at least one case")
        self.gpu = gpu
        self.cases = cases
        self.stop = stop
        kern = CUDAKernels(gpu: gpu, config: .deepseekV3Mini)
        tables = try cases.map { try DeviceSplitTables(gpu: gpu, placement: $0.placement) }
        counts = try cases.map { try DeviceArray(gpu, $0.counts) }
        quotas = try cases.map { try DeviceArray<Int32>(gpu, count: $0.placement.numSlots) }
    }

    /// Runs every case once (outputs poisoned first) with the benchmark's stop and with `.core`, and compares with the
    /// twin and Core.
    public func check() throws -> Checks {
        var out = Checks()
        func run(_ body: (Int, DeviceArray<Int32>) throws -> Void) throws -> [DeviceArray<Int32>] {
            let bufs = try cases.map { try DeviceArray<Int32>(gpu, count: $0.placement.numSlots) }
            for i in cases.indices { try bufs[i].poison(gpu); try body(i, bufs[i]) }
            return bufs
        }
        let fast = try run { try kern.balancedSplit(counts: counts[$0], tables: tables[$0], quotas: $1, stop: stop) }
        let exact = try run { try kern.balancedSplit(counts: counts[$0], tables: tables[$0], quotas: $1, stop: .core) }
        let previous = try run { try kern.balancedSplitLevels(counts: counts[$0], tables: tables[$0], quotas: $1) }
        try gpu.synchronize()
        var levels = 0, passes = 0, steps = 0, rounds = 0, ratios = 0.0
        for (i, c) in cases.enumerated() {
            let pl = c.placement
            let got = try fast[i].download(gpu), gotExact = try exact[i].download(gpu)
            let twin = SplitReference.solve(counts: c.counts, tables: tables[i].tables, placement: pl, stop: stop)
            let twinExact = SplitReference.quotas(
                counts: c.counts, tables: tables[i].tables, placement: pl, stop: .core)
            let core = ReplicaSplit.quotas(expertCounts: c.counts.map(Int.init), placement: pl, policy: .balanced)
            func vsCore(_ q: [Int32]) -> Int {
                zip(SplitTables.slotQuotas(replicaQuotas: q, placement: pl), core).filter { Int($0.0) != $0.1 }.count
            }
            out.conservationErrors += SplitCases.conservationErrors(replicaQuotas: got, counts: c.counts, placement: pl)
                + SplitCases.conservationErrors(replicaQuotas: gotExact, counts: c.counts, placement: pl)
            let wrong = zip(got, twin.quotas).filter { $0.0 != $0.1 }.count
                + zip(gotExact, twinExact).filter { $0.0 != $0.1 }.count
            out.twinMismatches += wrong
            out.levelsMismatches += vsCore(try previous[i].download(gpu))
            out.warpCases += tables[i].warpTables == nil ? 0 : 1
            if wrong > 0 && out.firstMismatch == nil {
                out.firstMismatch = "case \(i): ranks \(pl.numRanks) slotExpert \(pl.slotExpert) counts \(c.counts) "
                    + "gpu \(got) twin \(twin.quotas) gpu(core) \(gotExact) twin(core) \(twinExact)"
            }
            out.coreMismatches += vsCore(got)
            out.exactCoreMismatches += vsCore(gotExact)
            let corePeak = ReplicaSplit.rankLoads(quotas: core, placement: pl).max() ?? 0
            let peak = Double(SplitCases.peak(replicaQuotas: got, placement: pl))
            let ratio = corePeak > 0 ? peak / corePeak : (peak > 0 ? .infinity : 1)
            out.worstPeakRatio = max(out.worstPeakRatio, ratio)
            ratios += ratio
            levels += twin.levels
            passes += twin.passes
            steps += twin.steps
            rounds += twin.rounds
            out.fallbacks += twin.fellBack ? 1 : 0
        }
        let n = Double(cases.count)
        out.cases = cases.count
        out.meanPeakRatio = ratios / n
        out.meanLevels = Double(levels) / n
        out.meanPasses = Double(passes) / n
        out.meanSteps = Double(steps) / n
        out.meanRounds = Double(rounds) / n
        return out
    }

    /// Times the kernels and the CPU split; `rounds` passes over all cases per sample, `repeats` samples.
    public func time(rounds: Int = 10, repeats: Int = 11) throws -> Timing {
        let n = Double(rounds * cases.count)
        let eager = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds {
                for i in cases.indices {
                    try kern.balancedSplit(counts: counts[i], tables: tables[i], quotas: quotas[i], stop: stop)
                }
            }
        }
        func capture(_ stop: SplitStop) throws -> CUDAGraph {
            try CUDAGraph(stream: gpu.stream) {
                for i in cases.indices {
                    try kern.balancedSplit(counts: counts[i], tables: tables[i], quotas: quotas[i], stop: stop)
                }
            }
        }
        let graph = try capture(stop), coreGraph = try capture(.core)
        let graphMs = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds { try graph.launch(on: gpu.stream) }
        }
        let coreMs = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds { try coreGraph.launch(on: gpu.stream) }
        }
        // Compile and warm the previous kernels outside the capture.
        for i in cases.indices {
            try kern.balancedSplitSerial(counts: counts[i], tables: tables[i], quotas: quotas[i])
            try kern.balancedSplitLevels(counts: counts[i], tables: tables[i], quotas: quotas[i])
        }
        try gpu.synchronize()
        let levels = try CUDAGraph(stream: gpu.stream) {
            for i in cases.indices {
                try kern.balancedSplitLevels(counts: counts[i], tables: tables[i], quotas: quotas[i])
            }
        }
        let levelsMs = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds { try levels.launch(on: gpu.stream) }
        }
        let serial = try CUDAGraph(stream: gpu.stream) {
            for i in cases.indices {
                try kern.balancedSplitSerial(counts: counts[i], tables: tables[i], quotas: quotas[i])
            }
        }
        let serialMs = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds { try serial.launch(on: gpu.stream) }
        }
        let fl = try gpu.kernels.function(
            KernelKey(name: "split_busy.cu", source: SplitBusySource.source, defines: [:], architecture: gpu.architecture),
            "split_floor")
        let floor = try CUDAGraph(stream: gpu.stream) {
            for i in cases.indices {
                try gpu.launch(fl, grid: (1, 1, 1), block: (256, 1, 1),
                               args: [.ptr(counts[i].pointer), .ptr(quotas[i].pointer)], name: "split_floor")
            }
        }
        let floorMs = try gpu.time(warmup: 2, repeats: repeats) {
            for _ in 0..<rounds { try floor.launch(on: gpu.stream) }
        }
        let idleProfile = try profile()
        let loaded = try underLoad {
            let g = try gpu.time(warmup: 2, repeats: repeats) { for _ in 0..<rounds { try graph.launch(on: gpu.stream) } }
            let l = try gpu.time(warmup: 1, repeats: 5) { for _ in 0..<rounds { try levels.launch(on: gpu.stream) } }
            let s = try gpu.time(warmup: 1, repeats: 3) { for _ in 0..<rounds { try serial.launch(on: gpu.stream) } }
            return (g, l, s, try profile())
        }
        return Timing(
            gpuEagerMicros: eager * 1000 / n, gpuGraphMicros: graphMs * 1000 / n,
            coreStopGraphMicros: coreMs * 1000 / n, levelsGraphMicros: levelsMs * 1000 / n,
            serialGraphMicros: serialMs * 1000 / n, floorGraphMicros: floorMs * 1000 / n, gpuGraphLoadedMicros: loaded.0 * 1000 / n,
            levelsGraphLoadedMicros: loaded.1 * 1000 / n, serialGraphLoadedMicros: loaded.2 * 1000 / n,
            cpuMicros: cpuMicros(repeats: repeats), profile: idleProfile, loadedProfile: loaded.3)
    }

    /// One launch per case with the kernel's profile counters on; means per launch.
    func profile() throws -> Profile {
        let buf = try DeviceArray<UInt64>(gpu, [UInt64](repeating: 0, count: 6))
        for i in cases.indices {
            try kern.balancedSplit(counts: counts[i], tables: tables[i], quotas: quotas[i], stop: stop, profile: buf)
        }
        return Profile(counters: try buf.download(gpu))
    }

    /// Runs `body` while `split_busy` (64 blocks × 256 threads, 1.5 s at most) keeps the card busy on a second
    /// stream, after 30 ms for the clocks to rise; waits for the load kernel to end before returning.
    func underLoad<T>(_ body: () throws -> T) throws -> T {
        let side = try CUDAStream(context: gpu.context)
        let sink = try DeviceArray<Float>(gpu, count: 1)
        let f = try gpu.kernels.function(
            KernelKey(name: "split_busy.cu", source: SplitBusySource.source, defines: [:], architecture: gpu.architecture),
            "split_busy")
        try gpu.launch(f, grid: (64, 1, 1), block: (256, 1, 1), args: [.i64(1_500_000_000), .ptr(sink.pointer)],
                       name: "split_busy", on: side)
        usleep(30_000)
        let r = try body()
        try side.synchronize()
        return r
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
