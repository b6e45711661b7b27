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
    /// Sorts packed 64-bit keys: the weight's bit pattern (monotonic for non-negative doubles) with its lowest bits
    /// replaced by the inverted expert id, so weights equal to within 2^-(52 - idBits) relative order by id.
    func sortedByReplicaWeight<C: Collection>(_ experts: C) -> [Int32] where C.Element == Int32 {
        let idBits = UInt64(max(1, Int.bitWidth - (numExperts - 1).leadingZeroBitCount))
        let idMask: UInt64 = (1 << idBits) - 1
        var keys = [UInt64]()
        keys.reserveCapacity(experts.count)
        for e in experts {
            let w = load[Int(e)] / Double(count[Int(e)])
            keys.append((w.bitPattern & ~idMask) | (idMask - UInt64(e)))
        }
        keys.sort(by: >)
        return keys.map { Int32(truncatingIfNeeded: idMask - ($0 & idMask)) }
    }
}
