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
            for i in 0..<g { groupLoad[i] = 0 }
            for x in 0..<e { groupLoad[x / groupSize] += weight[x] }
            balancedPacking(groupLoad, count: g, packs: n, pack: groupPack, rank: groupRank, heap: heap, state: state)
            for x in 0..<e {
                let grp = x / groupSize
                let mlog = (Int(groupPack[grp]) * groupsPerNode + Int(groupRank[grp])) * groupSize + x % groupSize
                mlog2log[mlog] = Int32(x)
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
    /// A max-heap over the items gives the linear scan's choice every time. Leaves the counts in `count`.
    private static func replicate(
        local: UnsafeMutablePointer<Float>, count: UnsafeMutablePointer<Float>, experts m: Int, slots: Int,
        phy2mlog: UnsafeMutablePointer<Int32>, heap: UnsafeMutablePointer<Int32>
    ) {
        for i in 0..<m {
            count[i] = 1
            phy2mlog[i] = Int32(i)
            heap[i] = Int32(i)
        }
        guard slots > m else { return }
        @inline(__always) func above(_ a: Int32, _ b: Int32) -> Bool {
            let qa = local[Int(a)] / count[Int(a)], qb = local[Int(b)] / count[Int(b)]
            return qa > qb || (qa == qb && a < b)
        }
        @inline(__always) func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 &* i &+ 1
                if l >= m { return }
                var c = l
                if l &+ 1 < m && above(heap[l &+ 1], heap[l]) { c = l &+ 1 }
                if !above(heap[c], heap[i]) { return }
                let t = heap[i]; heap[i] = heap[c]; heap[c] = t
                i = c
            }
        }
        var i = m / 2 - 1
        while i >= 0 { siftDown(i); i -= 1 }
        for phy in m..<slots {
            let best = heap[0]
            phy2mlog[phy] = best
            count[Int(best)] += 1
            siftDown(0)
        }
    }

    /// DeepSeek's balanced packing of `items[0..<count]` into `packs` packs of equal item counts: writes each item's
    /// pack and position in the pack. Items go heaviest first (stable: the lower index on ties) to the lightest pack
    /// with room (the lower pack on ties), with float32 pack sums in that order; a min-heap of the open packs gives
    /// the linear scan's choice every time.
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
        withUnsafeTemporaryAllocation(of: Float.self, capacity: packs) { weightBuffer in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: packs) { filledBuffer in
            let packWeight = weightBuffer.baseAddress!, filled = filledBuffer.baseAddress!
            for p in 0..<packs {
                packWeight[p] = 0
                filled[p] = 0
                heap[p] = Int32(p)  // all weights 0: ascending ids form a valid min-heap
            }
            var open = packs
            @inline(__always) func below(_ a: Int32, _ b: Int32) -> Bool {
                let wa = packWeight[Int(a)], wb = packWeight[Int(b)]
                return wa < wb || (wa == wb && a < b)
            }
            for k in 0..<count {
                let i = Int(UInt32.max &- UInt32(truncatingIfNeeded: keys[k]))
                let p = heap[0]
                pack[i] = p
                rank[i] = filled[Int(p)]
                packWeight[Int(p)] += items[i]
                filled[Int(p)] &+= 1
                if Int(filled[Int(p)]) == perPack {
                    open &-= 1
                    heap[0] = heap[open]
                }
                // Sift the root down (its pack got heavier, or it was replaced by the last entry).
                var j = 0
                while true {
                    let l = 2 &* j &+ 1
                    if l >= open { break }
                    var c = l
                    if l &+ 1 < open && below(heap[l &+ 1], heap[l]) { c = l &+ 1 }
                    if !below(heap[c], heap[j]) { break }
                    let t = heap[j]; heap[j] = heap[c]; heap[c] = t
                    j = c
                }
            }
        }
        }
    }
}
