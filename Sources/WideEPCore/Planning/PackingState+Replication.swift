extension PackingState {
    /// Min–max replication: one replica each, then every extra slot to the expert with the largest load per replica
    /// (ties to the lower id), at most `cap` replicas per expert.
    ///
    /// Giving each extra slot to the current maximum minimises the largest load per replica for the slot budget
    /// (the classic greedy for min–max apportionment). `slots` replicas are handed out in total.
    func replicateMinMax(slots: Int, cap: Int) {
        for e in 0..<numExperts { order[e] = Int32(e) }
        replicateMinMax(experts: UnsafeMutableBufferPointer(rebasing: order[0..<numExperts]), slots: slots, cap: cap)
    }

    /// Min–max replication restricted to `experts` (whose `count`s are reset to 1), with `slots` replicas in total.
    /// `experts` is used as the heap's storage and is left permuted.
    func replicateMinMax(experts heap: UnsafeMutableBufferPointer<Int32>, slots: Int, cap: Int) {
        let m = heap.count
        precondition(slots >= m && slots <= m * cap)
        for i in 0..<m { count[Int(heap[i])] = 1 }
        var extra = slots - m
        guard extra > 0 else { return }
        var n = cap > 1 ? m : 0
        var i = n / 2 - 1
        while i >= 0 { siftDown(heap, i, n); i -= 1 }
        while extra > 0 && n > 0 {
            let e = Int(heap[0])
            count[e] += 1
            extra -= 1
            if Int(count[e]) >= cap {
                n -= 1
                heap.swapAt(0, n)
            }
            siftDown(heap, 0, n)
        }
        precondition(extra == 0, "replica cap leaves slots unused")
    }

    /// Whether expert `a` ranks above expert `b` in the replication heap.
    @inline(__always)
    private func heapAbove(_ a: Int32, _ b: Int32) -> Bool {
        let va = load[Int(a)] / Double(count[Int(a)]), vb = load[Int(b)] / Double(count[Int(b)])
        return va > vb || (va == vb && a < b)
    }

    private func siftDown(_ heap: UnsafeMutableBufferPointer<Int32>, _ start: Int, _ n: Int) {
        var i = start
        while true {
            let l = 2 &* i &+ 1
            if l >= n { return }
            var c = l
            if l &+ 1 < n && heapAbove(heap[l &+ 1], heap[l]) { c = l &+ 1 }
            if !heapAbove(heap[c], heap[i]) { return }
            heap.swapAt(i, c)
            i = c
        }
    }

    /// `experts` ordered by load per replica, heaviest first (ties to the lower id).
    ///
    /// Sorts packed 64-bit keys (`KeySort.key`): weights equal to within 2^-(52 - idBits) relative order by id.
    func sortedByReplicaWeight<C: Collection>(_ experts: C) -> [Int32] where C.Element == Int32 {
        let idMask = KeySort.idMask(count: numExperts)
        var n = 0
        for e in experts {
            keys[n] = KeySort.key(weight: load[Int(e)] / Double(count[Int(e)]), id: Int(e), idMask: idMask)
            n += 1
        }
        KeySort.descending(keys, count: n)
        return (0..<n).map { KeySort.id(keys[$0], idMask: idMask) }
    }
}

extension PackingState {
    /// Min–max replication of all experts into `slots` replicas (at most `cap` each), returning the experts ordered
    /// by load per replica, heaviest first (ties to the lower id). Same counts as `replicateMinMax(slots:cap:)`
    /// except between loads equal to within about 2^-44 relative, which the packed sort keys order by id.
    ///
    /// Only a prefix of the experts by load can get extra replicas: when expert x receives one, every expert
    /// ahead of it in (load, id) order already has two or more. So the heap spans just the first `slots − E`
    /// experts, and the final order is that prefix, re-sorted by load per replica, merged with the untouched rest.
    func replicateOrdered(slots: Int, cap: Int) -> UnsafeMutableBufferPointer<Int32> {
        let nE = numExperts
        let idMask = KeySort.idMask(count: nE)
        let out = expertOrder
        for e in 0..<nE {
            count[e] = 1
            keys[e] = KeySort.key(weight: load[e], id: e, idMask: idMask)
        }
        KeySort.descending(keys, count: nE)
        let extra = slots - nE
        let m = cap > 1 ? min(extra, nE) : 0
        guard m > 0 else {
            for i in 0..<nE { out[i] = KeySort.id(keys[i], idMask: idMask) }
            return out
        }
        for i in 0..<m { order[i] = KeySort.id(keys[i], idMask: idMask) }
        replicateMinMax(experts: UnsafeMutableBufferPointer(rebasing: order[0..<m]), slots: extra + m, cap: cap)
        // Prefix re-keyed and sorted; the rest keeps its (load, id) order, which is its replica-weight order.
        let head = keys + nE
        for i in 0..<m {
            let e = Int(KeySort.id(keys[i], idMask: idMask))
            head[i] = KeySort.key(weight: load[e] / Double(count[e]), id: e, idMask: idMask)
        }
        KeySort.descending(head, count: m)
        var a = 0, b = m, o = 0
        while a < m && b < nE {
            if head[a] > keys[b] {
                out[o] = KeySort.id(head[a], idMask: idMask); a &+= 1
            } else {
                out[o] = KeySort.id(keys[b], idMask: idMask); b &+= 1
            }
            o &+= 1
        }
        while a < m { out[o] = KeySort.id(head[a], idMask: idMask); a &+= 1; o &+= 1 }
        while b < nE { out[o] = KeySort.id(keys[b], idMask: idMask); b &+= 1; o &+= 1 }
        return out
    }
}
