import Foundation
import Testing
import WideEPCore
import WideEPTestSupport
@testable import WideEPWorkload

@Suite struct PlacementFileTests {
    /// A random valid placement: every expert once, extra slots to random experts on ranks that lack them.
    static func randomPlacement(experts: Int, ranks: Int, slots: Int, rng: inout SplitMix64) throws -> Placement {
        let per = slots / ranks
        var table = [Int32](repeating: -1, count: slots)
        var order = Array(0..<slots)
        order.shuffle(using: &rng)
        for e in 0..<experts { table[order[e]] = Int32(e) }
        for s in order[experts...] {
            let rank = s / per
            let onRank = Set(table[rank * per..<(rank + 1) * per])
            let candidates = (0..<experts).filter { !onRank.contains(Int32($0)) }
            table[s] = Int32(candidates.randomElement(using: &rng)!)
        }
        return try Placement(slotExpert: table, numExperts: experts, numRanks: ranks)
    }

    static func randomFile(seed: UInt64, layers: Int = 4, experts: Int = 16, ranks: Int = 4, slots: Int = 20) throws -> PlacementFile {
        var rng = SplitMix64(seed: seed)
        let ps = try (0..<layers).map { _ in try randomPlacement(experts: experts, ranks: ranks, slots: slots, rng: &rng) }
        return try PlacementFile(placements: ps, layerIds: (0..<layers).map { 3 + 2 * $0 }, layerUpdatesPerIter: 2)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func roundTripsThroughYAML(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        let file = try Self.randomFile(seed: seed)
        try file.save(path: dir.file("p.yaml"))
        // The EP size and expert count come back from the header comment.
        let back = try PlacementFile.load(path: dir.file("p.yaml"))
        #expect(back == file)
        #expect(try PlacementFile.load(path: dir.file("p.yaml"), numRanks: 4, numExperts: 16) == file)
    }

    @Test func yamlHasTheTensorRTLLMKeysOnly() throws {
        let text = try Self.randomFile(seed: 4, layers: 2).yaml()
        let top = text.split(separator: "\n").filter { !$0.hasPrefix(" ") && !$0.hasPrefix("#") }
        #expect(top == ["num_slots: 20", "layer_updates_per_iter: 2", "initial_global_assignments:"])
        #expect(text.contains("\n  3: ["))
    }

    @Test func acceptsNestedLoadBalancerForms() throws {
        let body = "num_slots: 4\ninitial_global_assignments:\n  0: [0, 1, 2, 3]\n  1: [3, 2, 1, 0]\n"
        let indented = body.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        let moe = "moe_config:\n  load_balancer:\n" + indented + "\n"
        let lb = "load_balancer:\n" + body.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
        for text in [body, moe, lb] {
            let f = try PlacementFile.parse(yaml: text, numRanks: 2, numExperts: 4)
            #expect(f.placements.map(\.slotExpert) == [[0, 1, 2, 3], [3, 2, 1, 0]])
            #expect(f.layerUpdatesPerIter == 0)
        }
        let dir = TemporaryDirectory()
        dir.write("lb.yaml", text: body)
        let ref = dir.write("config.yaml", text: "moe_config:\n  load_balancer: lb.yaml\n")
        #expect(try PlacementFile.load(path: ref, numRanks: 2).numLayers == 2)
    }

    @Test func rejectsSlotCountNotDivisibleByEPSize() {
        let text = "num_slots: 6\ninitial_global_assignments:\n  7: [0, 1, 2, 3, 0, 1]\n"
        expectError(["p.yaml", "layer 7", "slot count 6 is not divisible by ep-size 4"]) {
            _ = try PlacementFile.parse(yaml: text, path: "p.yaml", numRanks: 4)
        }
    }

    @Test func rejectsExpertIdsOutOfRange() {
        let text = "num_slots: 4\ninitial_global_assignments:\n  0: [0, 1, 2, 3]\n  1: [0, 1, 9, 3]\n"
        expectError(["layer 1", "slot 2 holds expert 9", "0..<4"]) {
            _ = try PlacementFile.parse(yaml: text, numRanks: 2, numExperts: 4)
        }
        let neg = "num_slots: 2\ninitial_global_assignments:\n  0: [0, -1]\n"
        expectError(["layer 0", "expert -1"]) { _ = try PlacementFile.parse(yaml: neg, numRanks: 1) }
    }

    @Test func rejectsMissingExpertsAndSameRankReplicas() throws {
        let missing = "num_slots: 4\ninitial_global_assignments:\n  0: [0, 1, 1, 3]\n"
        expectError(["layer 0", "expert 2 has no slot"]) { _ = try PlacementFile.parse(yaml: missing, numRanks: 2, numExperts: 4) }
        let dup = "num_slots: 4\ninitial_global_assignments:\n  0: [0, 0, 1, 2]\n"
        expectError(["layer 0", "expert 0 has two replicas on rank 0"]) { _ = try PlacementFile.parse(yaml: dup, numRanks: 2) }
        #expect(try PlacementFile.parse(yaml: dup, numRanks: 2, allowSameRankReplicas: true).numExperts == 3)
    }

    @Test func rejectsWrongLengthsAndKinds() {
        let short = "num_slots: 4\ninitial_global_assignments:\n  0: [0, 1, 2, 3]\n  1: [0, 1, 2]\n"
        expectError(["x.yaml:4", "initial_global_assignments[1]", "4 expert ids (num_slots), got 3"]) {
            _ = try PlacementFile.parse(yaml: short, path: "x.yaml", numRanks: 2)
        }
        let str = "num_slots: 2\ninitial_global_assignments:\n  0: [0, a]\n"
        expectError(["initial_global_assignments[0][1] 'a'", "an integer expert id"]) { _ = try PlacementFile.parse(yaml: str, numRanks: 1) }
        let key = "num_slots: 2\ninitial_global_assignments:\n  first: [0, 1]\n"
        expectError(["key 'first'", "an integer layer index"]) { _ = try PlacementFile.parse(yaml: key, numRanks: 1) }
        let slots = "num_slots: many\ninitial_global_assignments:\n  0: [0, 1]\n"
        expectError(["num_slots must be an integer"]) { _ = try PlacementFile.parse(yaml: slots, numRanks: 1) }
    }

    @Test func needsTheEPSizeAndChecksIt() throws {
        let plain = "num_slots: 4\ninitial_global_assignments:\n  0: [0, 1, 2, 3]\n"
        expectError(["p.yaml", "pass --ep-size"]) { _ = try PlacementFile.parse(yaml: plain, path: "p.yaml") }
        let keyed = "ep_size: 2\n" + plain
        #expect(try PlacementFile.parse(yaml: keyed).numRanks == 2)
        expectError(["ep_size is 2 but 4 was given"]) { _ = try PlacementFile.parse(yaml: keyed, numRanks: 4) }
        let written = try Self.randomFile(seed: 5).yaml()
        expectError(["expert count is 16 but 20 was given"]) { _ = try PlacementFile.parse(yaml: written, numExperts: 20) }
    }

    @Test func rejectsInvalidYAMLAndMissingKeys() {
        expectError(["b.yaml", "invalid YAML"]) {
            _ = try PlacementFile.parse(yaml: "num_slots: [1, 2\n", path: "b.yaml", numRanks: 1)
        }
        expectError(["missing key 'initial_global_assignments'"]) { _ = try PlacementFile.parse(yaml: "num_slots: 4\n", numRanks: 1) }
        expectError(["missing key 'moe_config.load_balancer'"]) { _ = try PlacementFile.parse(yaml: "moe_config:\n  x: 1\n", numRanks: 1) }
    }

    @Test func bundlingChecksShapes() throws {
        let a = try Placement.identity(numExperts: 4, numRanks: 2)
        let b = try Placement.identity(numExperts: 4, numRanks: 4)
        expectError(["layer 1 has 4 slots / ep-size 4"]) { _ = try PlacementFile(placements: [a, b]) }
        expectError(["strictly ascending"]) { _ = try PlacementFile(placements: [a, a], layerIds: [2, 1]) }
        expectError(["at least one layer"]) { _ = try PlacementFile(placements: []) }
    }
}
