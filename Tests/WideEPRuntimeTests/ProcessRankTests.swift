import Dispatch
import Foundation
import Testing
import WideEPCPU
import WideEPCore
import WideEPRuntime
import WideEPTestSupport
import WideEPWorkload

/// The process-per-rank serving path, with each "process" a thread holding its own `ProcessRankBackend` over one
/// in-memory store: it must reproduce the all-ranks-in-one-process run exactly.
@Suite struct ProcessRankTests {
    static let config = MoEConfig(
        name: "small", numExperts: 12, topK: 2, numShared: 1, hiddenSize: 16, moeIntermediateSize: 8,
        sharedIntermediateSize: 8, numMoELayers: 2)

    static func inputs(ranks: Int) throws -> (store: [MoELayerWeights], initial: [Placement], options: RunOptions,
                                               workload: RoutingWorkload) {
        let store = (0..<config.numMoELayers).map { MoELayerWeights.random(config: config, seed: 40 &+ UInt64($0)) }
        let request = PlannerRequest(numSlots: 12 + ranks, topology: try Topology(numRanks: ranks))
        let initial = try Planner.plan(
            loads: Array(repeating: [Double](repeating: 1, count: 12), count: config.numMoELayers), request: request)
        let options = RunOptions(
            steps: 16, tokensPerStep: 37,
            balancer: BalancerOptions(mode: .online, rebalanceInterval: 3, imbalanceThreshold: 0.3,
                                      layerUpdatesPerStep: 1, request: request),
            verifyEvery: 5, verifyTolerance: 1e-5, seed: 9)
        let traffic = TrafficOptions(steps: 16, tokensPerStep: 37, seed: 5, skew: 1.3, drift: 0.1, shiftEvery: 6)
        return (store, initial, options, try RoutingWorkload(config: config, traffic: traffic))
    }

    @Test(arguments: [2, 3])
    func processPerRankRunEqualsThreadRun(ranks: Int) throws {
        let (store, initial, options, workload) = try Self.inputs(ranks: ranks)
        let single = try ServingRun.run(
            backend: try CPUBackend(options: BackendOptions(numRanks: ranks, workerThreads: ranks)), store: store,
            initial: initial, workload: workload, options: options)
        let kv = MemoryRankStore()
        let results = ReportBox(count: ranks)
        let done = DispatchGroup()
        for rank in 0..<ranks {
            done.enter()
            Thread {
                do {
                    let backend = try ProcessRankBackend(store: kv, rank: rank, size: ranks, workers: 1, prefix: "p")
                    results.set(rank, .success(try ServingRun.run(
                        backend: backend, store: store, initial: initial, workload: workload, options: options)))
                } catch {
                    results.set(rank, .failure(error))
                }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(single.report.rebalances >= 1)
        for rank in 0..<ranks {
            let run = try #require(try results.get(rank)?.get())
            let a = single.report, b = run.report
            #expect(b.processes == ranks && a.processes == 1)
            #expect(run.counts == single.counts, "rank \(rank): realized counts differ")
            #expect(b.imbalanceMean == a.imbalanceMean && b.imbalanceP99 == a.imbalanceP99)
            #expect(b.rebalances == a.rebalances && b.slotsMoved == a.slotsMoved)
            #expect(b.verifications == a.verifications && b.verificationMismatches == 0)
            #expect(b.staleSlotObservations == 0)
            // Dispatch rows are summed over processes: the same all-to-all volume as the thread run.
            #expect(b.dispatchRowsPerToken == a.dispatchRowsPerToken)
        }
    }

    @Test func plansAreAdoptedAtAFixedLagWhateverThePlanningTime() throws {
        // Planning time varies per plan; the adoption steps must not.
        var adopted: [[Int]] = []
        for delays in [[0, 0, 0, 0], [30_000, 0, 20_000, 5_000]] {
            let request = PlannerRequest(numSlots: 6, topology: try Topology(numRanks: 2))
            let balancer = OnlineBalancer(
                options: BalancerOptions(mode: .online, rebalanceInterval: 2, request: request, adoptionLag: 2),
                numLayers: 1, numExperts: 4)
            let current = [try Placement(slotExpert: [0, 1, 2, 3, 0, 1], numExperts: 4, numRanks: 2)]
            let calls = Counter()
            balancer.planner = { _, cur in
                let i = calls.value
                calls.increment()
                usleep(UInt32(delays[i % delays.count]))
                return cur
            }
            var steps: [Int] = []
            for step in 0..<12 {
                balancer.observe(step: step, counts: [[5, 1, 1, 1]], imbalance: 0, current: current)
                if try balancer.adoptPlan(step: step) != nil { steps.append(step) }
            }
            adopted.append(steps)
        }
        #expect(adopted[0] == adopted[1])
        // Started after step 1 and adopted after step 3 (lag 2); the start due after step 3 was blocked while that
        // plan was pending, so the next starts after step 4 and is adopted after step 6, and so on.
        #expect(adopted[0] == [3, 6, 9])
    }
}

/// Per-rank results written from rank threads.
final class ReportBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Result<(report: RunReport, counts: [[[Double]]]), Error>?]

    init(count: Int) { values = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ v: Result<(report: RunReport, counts: [[[Double]]]), Error>) {
        lock.lock()
        values[i] = v
        lock.unlock()
    }

    func get(_ i: Int) -> Result<(report: RunReport, counts: [[[Double]]]), Error>? {
        lock.lock()
        defer { lock.unlock() }
        return values[i]
    }
}
