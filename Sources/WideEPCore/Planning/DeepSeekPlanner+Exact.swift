/// DeepSeek EPLB with its own semantics, for callers that allow same-rank replicas (as DeepSeek does).
///
/// Follows deepseek-ai/EPLB's description step by step so `policy="deepseek"` reproduces its published outputs,
/// ties included: loads in float32; "balanced packing" sorts items by load, descending and stable (lower index first
/// on ties), and puts each on the lightest pack with room (the lowest pack on ties), recording its position in the
/// pack; inside a node, groups are laid out in the order they were packed; replication appends each extra replica of
/// the expert with the largest load per replica (the lowest index on ties) after the node's originals; with one item
/// per pack, packing is the identity.
extension DeepSeekPlanner {
    /// Slot → expert table for one layer; `groups % nodes != 0` uses the global policy (one group, one node).
    static func exactSlotTable(loads: [Double], numSlots: Int, groups: Int, nodes: Int, gpus: Int) -> [Int32] {
        let e = loads.count
        let hierarchical = groups % nodes == 0
        let g = hierarchical ? groups : 1
        let n = hierarchical ? nodes : 1
        let weight = loads.map { Float($0) }
        let groupSize = e / g
        let groupsPerNode = g / n
        let expertsPerNode = e / n
        let slotsPerNode = numSlots / n
        let gpusPerNode = gpus / n
        let slotsPerGPU = numSlots / gpus

        // Step 1: groups → nodes. `log2mlog` numbers experts node-major in packing order.
        var groupLoad = [Float](repeating: 0, count: g)
        for x in 0..<e { groupLoad[x / groupSize] += weight[x] }
        let (groupPack, groupRank) = balancedPacking(groupLoad, packs: n)
        var mlog2log = [Int](repeating: 0, count: e)
        for x in 0..<e {
            let grp = x / groupSize
            let mlog = (groupPack[grp] * groupsPerNode + groupRank[grp]) * groupSize + x % groupSize
            mlog2log[mlog] = x
        }

        var slotExpert = [Int32](repeating: -1, count: numSlots)
        for node in 0..<n {
            // Step 2: replicate the node's experts into its slots.
            let local = (0..<expertsPerNode).map { weight[mlog2log[node * expertsPerNode + $0]] }
            var phy2mlog = Array(0..<expertsPerNode)
            var count = [Float](repeating: 1, count: expertsPerNode)
            for _ in expertsPerNode..<slotsPerNode {
                var best = 0
                for i in 1..<expertsPerNode where local[i] / count[i] > local[best] / count[best] { best = i }
                phy2mlog.append(best)
                count[best] += 1
            }
            // Step 3: replicas → the node's GPUs.
            let phyLoad = phy2mlog.map { local[$0] / count[$0] }
            let (pack, rank) = balancedPacking(phyLoad, packs: gpusPerNode)
            for (phy, m) in phy2mlog.enumerated() {
                let slot = node * slotsPerNode + pack[phy] * slotsPerGPU + rank[phy]
                slotExpert[slot] = Int32(mlog2log[node * expertsPerNode + m])
            }
        }
        return slotExpert
    }

    /// DeepSeek's balanced packing of `items` into `packs` packs of equal item counts: (pack, position in pack).
    static func balancedPacking(_ items: [Float], packs: Int) -> (pack: [Int], rank: [Int]) {
        let perPack = items.count / packs
        // DeepSeek short-cuts one item per pack to the identity, without sorting.
        if perPack == 1 { return (Array(items.indices), [Int](repeating: 0, count: items.count)) }
        let order = items.indices.sorted { items[$0] > items[$1] || (items[$0] == items[$1] && $0 < $1) }
        var packWeight = [Float](repeating: 0, count: packs)
        var packItems = [Int](repeating: 0, count: packs)
        var pack = [Int](repeating: 0, count: items.count)
        var rank = [Int](repeating: 0, count: items.count)
        for i in order {
            var best = -1
            for p in 0..<packs where packItems[p] < perPack {
                if best < 0 || packWeight[p] < packWeight[best] { best = p }
            }
            pack[i] = best
            rank[i] = packItems[best]
            packWeight[best] += items[i]
            packItems[best] += 1
        }
        return (pack, rank)
    }
}
