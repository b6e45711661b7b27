import Foundation
import Testing
import WideEPCPU
import WideEPCore
@testable import WideEPRuntime

/// `wide-ep layer`'s library path: a checkpoint layer run over EP ranks matches transformers' own MoE blocks.
@Suite struct CheckpointLayerTests {
    typealias Fixture = CheckpointFixtures

    struct Setup: CustomStringConvertible, Sendable {
        var fixture: CheckpointFixtures.Case
        var epSize: Int
        var policy: PlannerPolicy
        var split: SplitPolicy
        var description: String { "\(fixture.name) ep\(epSize) \(policy.rawValue)/\(split.rawValue)" }
    }

    /// Every fixture at EP 1, 2 and 4 with 4 extra slots (replicas), rotating the planner and split policies.
    static let setups: [Setup] = CheckpointFixtures.cases.enumerated().flatMap { i, c in
        [1, 2, 4].enumerated().map { j, r in
            let policies: [PlannerPolicy] = [.balanced, .greedy, .deepseek]
            return Setup(fixture: c, epSize: r, policy: policies[(i + j) % 3],
                         split: (i + j) % 2 == 0 ? .balanced : .even)
        }
    }

    @Test(arguments: setups)
    func epLayerMatchesTransformersWithReplicas(_ s: Setup) throws {
        let c = s.fixture
        let w = try CheckpointLoader.loadLayer(directory: c.directory, layer: c.layer)
        let (x, expected, tokens) = try Fixture.io(c)
        let counts = LayerRun.expertCounts(weights: w, hidden: x, tokens: tokens)
        #expect(counts.reduce(0, +) == tokens * c.topK)
        let slots = c.experts + 4
        let placement = try LayerRun.plan(
            counts: counts, config: w.config, epSize: s.epSize, numSlots: slots, policy: s.policy)
        #expect(placement.numSlots == slots && placement.replicaCount.contains { $0 > 1 })
        let backend = try CPUBackend(options: BackendOptions(numRanks: s.epSize, workerThreads: 2))
        let result = try LayerRun.run(
            backend: backend, weights: w, hidden: x, tokens: tokens, placement: placement, split: s.split)
        #expect(result.expertCounts == counts)
        #expect(result.tokensPerRank.reduce(0, +) == tokens)
        #expect(abs(result.rankLoads.reduce(0, +) - Double(tokens * c.topK)) < 1e-9)
        let err = Fixture.relativeError(result.output, expected)
        #expect(err <= 1e-4, "relative error \(err)")
        #expect(MoEMath.relativeError(result.output, expected) <= 1e-4)
    }

    @Test func identityPlacementNeedsOneSlotPerExpert() throws {
        let c = Fixture.named("mixtral")
        let w = try CheckpointLoader.loadLayer(directory: c.directory, layer: c.layer)
        #expect(throws: PlacementError.self) {
            _ = try LayerRun.plan(counts: [Int](repeating: 1, count: 8), config: w.config, epSize: 2, numSlots: 10,
                                  policy: .none)
        }
        let p = try LayerRun.plan(counts: [Int](repeating: 1, count: 8), config: w.config, epSize: 2, numSlots: 8,
                                  policy: .none)
        #expect(p.slotExpert == (0..<8).map(Int32.init))
    }
}
