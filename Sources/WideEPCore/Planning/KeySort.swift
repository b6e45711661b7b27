/// Sorting of packed 64-bit keys for the planners' hot paths.
///
/// A least-significant-digit radix sort on the high 32 bits (8-bit digits; a digit every key shares is skipped, and
/// the low digits are skipped when the upper ones already spread the keys over buckets of at most `fewTies`), then an
/// insertion pass that orders keys whose high halves tie (or that share their upper digits' buckets). Branches hardly depend on the data, which matters
/// more than the operation count here: a comparison sort of a layer's 256 fresh keys mispredicts about every other
/// comparison and takes several times longer. Linear time when the high halves are distinct (the insertion pass then
/// only checks neighbours); keys that tie in their high halves are ordered by insertion.
enum KeySort {
    /// Sorts `keys[0..<n]` in descending order.
    ///
    /// The final insertion pass orders keys whose radix-sorted digits tie by their remaining bits; equal keys keep no
    /// particular order (the planners' keys embed an id, so they never tie).
    static func descending(_ keys: UnsafeMutablePointer<UInt64>, count n: Int) {
        if n < 2 { return }
        if n > 32 {
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { scratch in
                radixHighHalfDescending(keys, count: n, scratch: scratch.baseAddress!)
            }
        }
        insertionDescending(keys, count: n)
    }

    /// Most keys per bucket of a digit for which the radix sort leaves the digits below it to the insertion pass.
    static let fewTies: UInt32 = 4

    /// Longest input for which the radix sort considers skipping low digits (on longer inputs the buckets rarely
    /// stay that small and the extra bookkeeping does not pay).
    static let shortInput = 128

    /// LSD radix sort, descending, on bits 32..<64 (or only their upper digits, see `fewTies`); the insertion pass
    /// after it finishes the order.
    private static func radixHighHalfDescending(
        _ keys: UnsafeMutablePointer<UInt64>, count n: Int, scratch: UnsafeMutablePointer<UInt64>
    ) {
        // Ascending on the complemented keys is descending on the keys (and keeps ties in input order).
        for i in 0..<n { keys[i] = ~keys[i] }
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 4 * 256) { countBuffer in
            let counts = countBuffer.baseAddress!
            counts.initialize(repeating: 0, count: 4 * 256)
            var firstDigit = 0
            if n <= shortInput {
                // The fullest bucket of digits 1 and 2 (bits 40..<48, 48..<56).
                var most1: UInt32 = 0, most2: UInt32 = 0
                for i in 0..<n {
                    let k = keys[i]
                    counts[Int((k >> 32) & 0xFF)] &+= 1
                    let c1 = counts[256 &+ Int((k >> 40) & 0xFF)] &+ 1
                    counts[256 &+ Int((k >> 40) & 0xFF)] = c1
                    let c2 = counts[512 &+ Int((k >> 48) & 0xFF)] &+ 1
                    counts[512 &+ Int((k >> 48) & 0xFF)] = c2
                    counts[768 &+ Int(k >> 56)] &+= 1
                    most1 = max(most1, c1)
                    most2 = max(most2, c2)
                }
                // Keys that share a bucket of digit d share it also in the digits above, so when no bucket of digit
                // d holds more than `fewTies` keys, the passes from d up leave only short runs of keys out of order,
                // which the insertion pass after this sort orders cheaply: the lower passes (a 256-bucket prefix sum
                // and a scatter each, costly next to a few dozen keys) can be skipped.
                firstDigit = most2 <= fewTies ? 2 : most1 <= fewTies ? 1 : 0
            } else {
                for i in 0..<n {
                    let k = keys[i]
                    counts[Int((k >> 32) & 0xFF)] &+= 1
                    counts[256 &+ Int((k >> 40) & 0xFF)] &+= 1
                    counts[512 &+ Int((k >> 48) & 0xFF)] &+= 1
                    counts[768 &+ Int(k >> 56)] &+= 1
                }
            }
            var src = keys, dst = scratch
            for d in firstDigit..<4 {
                let bucket = counts + d &* 256
                let shift = UInt64(32 &+ d &* 8)
                // A digit every key shares leaves the order unchanged.
                if bucket[Int((src[0] >> shift) & 0xFF)] == UInt32(n) { continue }
                var sum: UInt32 = 0
                for b in 0..<256 {
                    let c = bucket[b]
                    bucket[b] = sum
                    sum &+= c
                }
                for i in 0..<n {
                    let k = src[i]
                    let b = Int((k >> shift) & 0xFF)
                    dst[Int(bucket[b])] = k
                    bucket[b] &+= 1
                }
                swap(&src, &dst)
            }
            if src != keys { keys.update(from: src, count: n) }
        }
        for i in 0..<n { keys[i] = ~keys[i] }
    }

    /// Insertion sort, descending; for short runs.
    @inline(__always)
    static func insertionDescending(_ keys: UnsafeMutablePointer<UInt64>, count n: Int) {
        var i = 1
        while i < n {
            let k = keys[i]
            var j = i
            while j > 0 && keys[j &- 1] < k {
                keys[j] = keys[j &- 1]
                j &-= 1
            }
            keys[j] = k
            i &+= 1
        }
    }

    /// The sort key of a non-negative weight: its bit pattern (monotonic for non-negative doubles; -0 maps to +0)
    /// with the lowest `idBits` replaced by `idMask − id`, so that descending keys order by weight, heaviest first,
    /// then by id, lowest first. Weights equal to within 2^-(52 − idBits) relative are ordered by id alone.
    @inline(__always)
    static func key(weight: Double, id: Int, idMask: UInt64) -> UInt64 {
        ((weight + 0.0).bitPattern & ~idMask) | (idMask &- UInt64(id))
    }

    /// The id packed into a key made by `key(weight:id:idMask:)`.
    @inline(__always)
    static func id(_ key: UInt64, idMask: UInt64) -> Int32 { Int32(truncatingIfNeeded: idMask &- (key & idMask)) }

    /// The mask of the low bits that hold ids below `count`.
    static func idMask(count: Int) -> UInt64 {
        let idBits = UInt64(max(1, Int.bitWidth - (count - 1).leadingZeroBitCount))
        return (1 << idBits) - 1
    }
}
