/// DeepSeek EPLB with its own semantics, for callers that allow same-rank replicas (as DeepSeek does).
///
/// Follows deepseek-ai/EPLB's description step by step so `policy="deepseek"` reproduces its published outputs,
/// ties included: loads in float32; "balanced packing" sorts items by load, descending and stable (lower index first
/// on ties), and puts each on the lightest pack with room (the lowest pack on ties), recording its position in the
/// pack; inside a node, groups are laid out in the order they were packed; replication appends each extra replica of
/// the expert with the largest load per replica (the lowest index on ties) after the node's originals; with one item
/// per pack, packing is the identity.
///
/// The selections use heaps and the sorts packed keys (`KeySort`), with exactly the comparisons of the linear scans
/// and stable sorts they replace, so the result is the same table, in O(S log S) per layer.
extension DeepSeekPlanner {
    /// Writes the slot → expert table of the layer loaded in `state` (`state.load`) into `state.slotExpert`;
    /// `groups % nodes != 0` uses the global policy (one group, one node).
    static func exactPlan(state: PackingState, groups: Int) {
        let e = state.numExperts, numSlots = state.numSlots, nodes = state.numNodes, gpus = state.numRanks
        let hierarchical = groups % nodes == 0
        let g = hierarchical ? groups : 1
        let n = hierarchical ? nodes : 1
        let groupSize = e / g, groupsPerNode = g / n, epn = e / n
        let spn = numSlots / n, gpusPerNode = gpus / n, slotsPerGPU = numSlots / gpus
        withUnsafeTemporaryAllocation(of: Float.self, capacity: e + g + 2 * epn + spn) { floats in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: e + 2 * g + 4 * spn) { ints in
            let weight = floats.baseAddress!  // [e]
            let groupLoad = weight + e  // [g]
            let local = groupLoad + g  // [epn]
            let count = local + epn  // [epn]
            let phyLoad = count + epn  // [spn]
            let mlog2log = ints.baseAddress!  // [e]
            let groupPack = mlog2log + e, groupRank = groupPack + g  // [g] each
            let phy2mlog = groupRank + g, pack = phy2mlog + spn, rank = pack + spn, heap = rank + spn  // [spn] each
            for x in 0..<e { weight[x] = Float(state.load[x]) }

            // Step 1: groups → nodes. `mlog2log` numbers experts node-major in packing order.
            // Each group's float32 sum adds its experts in index order; the groups' sums interleave (member-major)
            // so that the g addition chains run side by side, with no division per expert.
            for i in 0..<g { groupLoad[i] = 0 }
            for j in 0..<groupSize {
                var x = j
                for i in 0..<g {
                    groupLoad[i] += weight[x]
                    x &+= groupSize
                }
            }
            balancedPacking(groupLoad, count: g, packs: n, pack: groupPack, rank: groupRank, heap: heap, state: state)
            for grp in 0..<g {
                let first = grp &* groupSize
                let base = (Int(groupPack[grp]) &* groupsPerNode &+ Int(groupRank[grp])) &* groupSize
                for j in 0..<groupSize { mlog2log[base &+ j] = Int32(first &+ j) }
            }

            for node in 0..<n {
                // Step 2: replicate the node's experts into its slots.
                for i in 0..<epn { local[i] = weight[Int(mlog2log[node &* epn &+ i])] }
                replicate(local: local, count: count, experts: epn, slots: spn, phy2mlog: phy2mlog, heap: heap)
                // Step 3: replicas → the node's GPUs.
                for phy in 0..<spn {
                    let m = Int(phy2mlog[phy])
                    phyLoad[phy] = local[m] / count[m]
                }
                balancedPacking(phyLoad, count: spn, packs: gpusPerNode, pack: pack, rank: rank, heap: heap, state: state)
                for phy in 0..<spn {
                    let slot = node &* spn &+ Int(pack[phy]) &* slotsPerGPU &+ Int(rank[phy])
                    state.slotExpert[slot] = mlog2log[node &* epn &+ Int(phy2mlog[phy])]
                }
            }
        }
        }
    }

    /// DeepSeek's replication of `experts` items into `slots` replicas: `phy2mlog[0..<experts]` is the identity, and
    /// each extra replica goes to the item with the largest float32 `local / count` (the lowest index on ties).
    /// A max-heap of packed keys (quotient bits, inverted index) gives the linear scan's choice every time. Leaves
    /// the counts in `count`.
    private static func replicate(
        local: UnsafeMutablePointer<Float>, count: UnsafeMutablePointer<Float>, experts m: Int, slots: Int,
        phy2mlog: UnsafeMutablePointer<Int32>, heap: UnsafeMutablePointer<Int32>
    ) {
        for i in 0..<m {
            count[i] = 1
            phy2mlog[i] = Int32(i)
        }
        guard slots > m else { return }
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: m) { keyBuffer in
            let keys = keyBuffer.baseAddress!
            @inline(__always) func key(_ i: Int) -> UInt64 {
                UInt64((local[i] / count[i] + 0).bitPattern) << 32 | UInt64(UInt32.max &- UInt32(i))
            }
            for i in 0..<m { keys[i] = key(i) }
            @inline(__always) func siftDown(_ start: Int) {
                var i = start
                let k = keys[i]
                while true {
                    let l = 2 &* i &+ 1
                    if l >= m { break }
                    var c = l
                    if l &+ 1 < m && keys[l &+ 1] > keys[l] { c = l &+ 1 }
                    if keys[c] <= k { break }
                    keys[i] = keys[c]
                    i = c
                }
                keys[i] = k
            }
            var i = m / 2 - 1
            while i >= 0 { siftDown(i); i -= 1 }
            for phy in m..<slots {
                let best = Int(UInt32.max &- UInt32(truncatingIfNeeded: keys[0]))
                phy2mlog[phy] = Int32(best)
                count[best] += 1
                keys[0] = key(best)
                siftDown(0)
            }
        }
    }

    /// DeepSeek's balanced packing of `items[0..<count]` into `packs` packs of equal item counts: writes each item's
    /// pack and position in the pack. Items go heaviest first (stable: the lower index on ties) to the lightest pack
    /// with room (the lower pack on ties), with float32 pack sums in that order. Packs are packed keys (sum bits,
    /// pack index; a full pack is the largest key), so "lightest, then lowest" is the smallest key.
    static func balancedPacking(
        _ items: UnsafeMutablePointer<Float>, count: Int, packs: Int, pack: UnsafeMutablePointer<Int32>,
        rank: UnsafeMutablePointer<Int32>, heap: UnsafeMutablePointer<Int32>, state: PackingState
    ) {
        let perPack = count / packs
        // DeepSeek short-cuts one item per pack to the identity, without sorting.
        if perPack == 1 {
            for i in 0..<count { pack[i] = Int32(i); rank[i] = 0 }
            return
        }
        // Descending keys: the weight's bits (monotonic for non-negative floats; -0 as +0), then the inverted index.
        let keys = state.keys
        for i in 0..<count {
            keys[i] = UInt64((items[i] + 0).bitPattern) << 32 | UInt64(UInt32.max &- UInt32(i))
        }
        KeySort.descending(keys, count: count)
        // A tournament tree over the packs' keys: leaves at [size, 2·size), each inner node the smaller child, so
        // the root is the lightest open pack and an update is log2(size) branch-free minimums.
        var size = 1
        while size < packs { size <<= 1 }
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 2 * size) { treeBuffer in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: packs) { weightBuffer in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: packs) { filledBuffer in
            let tree = treeBuffer.baseAddress!, packWeight = weightBuffer.baseAddress!
            let filled = filledBuffer.baseAddress!
            for p in 0..<packs {
                packWeight[p] = 0
                filled[p] = 0
            }
            for p in 0..<size { tree[size &+ p] = p < packs ? UInt64(p) : UInt64.max }
            var node = size &- 1
            while node >= 1 {
                tree[node] = min(tree[2 &* node], tree[2 &* node &+ 1])
                node &-= 1
            }
            for k in 0..<count {
                let p = Int(tree[1] & 0xFFFF_FFFF)
                let i = Int(UInt32.max &- UInt32(truncatingIfNeeded: keys[k]))
                pack[i] = Int32(p)
                rank[i] = filled[p]
                packWeight[p] += items[i]
                filled[p] &+= 1
                var j = size &+ p
                tree[j] = Int(filled[p]) == perPack ? UInt64.max : UInt64(packWeight[p].bitPattern) << 32 | UInt64(p)
                while j > 1 {
                    j >>= 1
                    tree[j] = min(tree[2 &* j], tree[2 &* j &+ 1])
                }
            }
        }
        }
        }
    }
}
