import Dispatch
import Foundation
import Testing
import WideEPCPU
import WideEPCore
import WideEPRuntime
import WideEPTestSupport
import WideEPWorkload

@Suite struct OnlineBalancerTests {
    static func request(ranks: Int, slots: Int) throws -> PlannerRequest {
        PlannerRequest(numSlots: slots, topology: try Topology(numRanks: ranks))
    }

    @Test func stepLoopNeverWaitsForPlanning() throws {
        let options = BalancerOptions(mode: .online, rebalanceInterval: 2, request: try Self.request(ranks: 2, slots: 6))
        let balancer = OnlineBalancer(options: options, numLayers: 1, numExperts: 4)
        let gate = DispatchSemaphore(value: 0)
        let current = [try Placement(slotExpert: [0, 1, 2, 3, 0, 1], numExperts: 4, numRanks: 2)]
        let planned = [try Placement(slotExpert: [0, 1, 3, 2, 3, 0], numExperts: 4, numRanks: 2)]
        balancer.planner = { _, _ in
            gate.wait()
            return planned
        }
        // The planner blocks; observe keeps returning and no plan appears.
        for step in 0..<10 {
            balancer.observe(step: step, counts: [[1, 2, 3, 4]], imbalance: 0, current: current)
            #expect(try balancer.takePlan() == nil)
        }
        #expect(balancer.isPlanning)
        #expect(balancer.plansStarted == 1)
        gate.signal()
        balancer.waitForIdle()
        #expect(try balancer.takePlan() == planned)
        #expect(try balancer.takePlan() == nil)
    }

    @Test func staticPlansOnceAndOffNever() throws {
        for (mode, expected) in [(BalancerMode.static, 1), (.off, 0)] {
            let options = BalancerOptions(mode: mode, rebalanceInterval: 3, request: try Self.request(ranks: 2, slots: 6))
            let balancer = OnlineBalancer(options: options, numLayers: 1, numExperts: 4)
            let current = [try Placement(slotExpert: [0, 1, 2, 3, 0, 1], numExperts: 4, numRanks: 2)]
            for step in 0..<20 {
                balancer.observe(step: step, counts: [[9, 1, 1, 1]], imbalance: 5, current: current)
                balancer.waitForIdle()
            }
            #expect(balancer.plansStarted == expected, "\(mode)")
        }
    }

    @Test func thresholdTriggersAnEarlyPlan() throws {
        let options = BalancerOptions(
            mode: .online, rebalanceInterval: 100, imbalanceThreshold: 0.5, request: try Self.request(ranks: 2, slots: 6))
        let balancer = OnlineBalancer(options: options, numLayers: 1, numExperts: 4)
        let current = [try Placement(slotExpert: [0, 1, 2, 3, 0, 1], numExperts: 4, numRanks: 2)]
        for step in 0..<30 {
            balancer.observe(step: step, counts: [[9, 1, 1, 1]], imbalance: step < 10 ? 0.1 : 0.9, current: current)
            balancer.waitForIdle()
        }
        #expect(balancer.plansStarted >= 1)
        let plan = try #require(try balancer.takePlan())
        // The hot expert gets a second replica on the other rank.
        #expect(plan[0].replicaCount[0] == 2)
    }

    @Test func onlineServingStaysExactAndBeatsOffOnDriftingTraffic() throws {
        let config = MoEConfig(
            name: "small", numExperts: 16, topK: 2, numShared: 0, hiddenSize: 16, moeIntermediateSize: 8,
            numMoELayers: 1)
        let store = [MoELayerWeights.random(config: config, seed: 21)]
        let traffic = TrafficOptions(steps: 60, tokensPerStep: 64, seed: 3, skew: 1.2, drift: 0.05, shiftEvery: 15)
        var results: [BalancerMode: RunReport] = [:]
        for mode in BalancerMode.allCases {
            let backend = try CPUBackend(options: BackendOptions(numRanks: 4, workerThreads: 2))
            let request = try Self.request(ranks: 4, slots: 20)
            let initial = try Planner.plan(loads: [[Double](repeating: 1, count: 16)], request: request)
            let options = RunOptions(
                steps: 60, tokensPerStep: 64,
                balancer: BalancerOptions(mode: mode, rebalanceInterval: 5, layerUpdatesPerStep: 1, request: request),
                verifyEvery: 7, verifyTolerance: 1e-5, seed: 1)
            let run = try ServingRun.run(
                backend: backend, store: store, initial: initial,
                workload: try RoutingWorkload(config: config, traffic: traffic), options: options)
            #expect(run.counts.count == 60)
            #expect(run.counts[0][0].reduce(0, +) == 64 * 2)
            #expect(run.report.verificationMismatches == 0, "\(mode)")
            #expect(run.report.verifications == 9)
            #expect(run.report.staleSlotObservations == 0)
            results[mode] = run.report
        }
        #expect(results[.off]!.rebalances == 0)
        #expect(results[.online]!.rebalances >= 3)
        #expect(results[.online]!.imbalanceMean < results[.off]!.imbalanceMean)
        // Every step but the first and the 9 verification steps is classed steady or migrating.
        for (mode, r) in results {
            #expect(r.migration.steadySteps + r.migration.migratingSteps == 60 - 1 - 8, "\(mode)")
            // A token reaches at least one and at most top-K = 2 ranks; on 4 ranks some tokens reach two.
            #expect(r.dispatchRowsPerToken > 1 && r.dispatchRowsPerToken <= 2, "\(mode): \(r.dispatchRowsPerToken)")
        }
        let off = results[.off]!.migration, online = results[.online]!
        #expect(off.migratingSteps == 0 && off.copyJobs == 0 && off.copyWaits == 0 && off.bytesPerRebalance == 0)
        #expect(off.steadyStepSeconds != nil && off.migratingToSteadyRatio == nil)
        #expect(online.migration.migratingSteps > 0 && online.migration.copyJobs > 0)
        #expect(online.migration.bytesPerRebalance == Double(online.bytesCopied) / Double(online.rebalances))
        #expect(online.migration.maxLayerCopySeconds >= online.migration.meanLayerCopySeconds)
        #expect(online.migration.pinnedHostBytes == 0)
    }

    /// Which layers migrate at which step, and to what, depends only on the counts and the step numbers — never on
    /// how long copies take — so every process of a job applies the same placements at the same steps.
    @Test func migrationDecisionsDoNotDependOnCopyTiming() throws {
        let config = MoEConfig(
            name: "small", numExperts: 12, topK: 2, numShared: 0, hiddenSize: 16, moeIntermediateSize: 8,
            numMoELayers: 3)
        let store = (0..<3).map { MoELayerWeights.random(config: config, seed: 30 &+ UInt64($0)) }
        let request = try Self.request(ranks: 3, slots: 15)
        let initial = try Planner.plan(loads: Array(repeating: [Double](repeating: 1, count: 12), count: 3),
                                       request: request)
        let traffic = TrafficOptions(steps: 40, tokensPerStep: 48, seed: 8, skew: 1.4, drift: 0.1, shiftEvery: 9)
        var runs: [(placements: [[Placement]], report: RunReport, counts: [[[Double]]])] = []
        for slow in [false, true] {
            let backend = try CPUBackend(options: BackendOptions(numRanks: 3, workerThreads: 2))
            let options = RunOptions(
                steps: 40, tokensPerStep: 48,
                balancer: BalancerOptions(mode: .online, rebalanceInterval: 2, imbalanceThreshold: 0.2,
                                          layerUpdatesPerStep: 1, request: request),
                verifyEvery: 3, verifyTolerance: 1e-5, seed: 2)
            var placements: [[Placement]] = []
            var g = SplitMix64(seed: 77)
            let delays = (0..<4096).map { _ in UInt32.random(in: 0..<400, using: &g) }
            let n = Counter()
            let run = try ServingRun.run(
                backend: backend, store: store, initial: initial,
                workload: try RoutingWorkload(config: config, traffic: traffic), options: options,
                afterStep: { _, p in placements.append(p) },
                slotCopyHook: slow ? { _, _ in n.increment(); usleep(delays[n.value % delays.count]) } : nil)
            #expect(run.report.verificationMismatches == 0 && run.report.staleSlotObservations == 0)
            runs.append((placements, run.report, run.counts))
        }
        #expect(runs[0].report.rebalances >= 3)
        #expect(runs[0].placements.count == 40)
        #expect(runs[0].placements == runs[1].placements)
        #expect(runs[0].counts == runs[1].counts)
        #expect(runs[0].report.slotsMoved == runs[1].report.slotsMoved)
        #expect(runs[0].report.rebalances == runs[1].report.rebalances)
    }
}
