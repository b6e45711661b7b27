import WideEPCore
import WideEPRuntime

extension CPUKernels {
    public func layout(
        slots: HostBuffer, weights: HostBuffer, tokens: Int, topK k: Int, slotsPerRank: Int, numRanks: Int,
        into layout: DispatchLayout<HostBuffer>
    ) throws -> [Int] {
        let s = slots.ints, w = weights.floats
        // Pass 1: rows per destination (a token counts once per rank however many of its pairs land there).
        var counts = [Int](repeating: 0, count: numRanks)
        for t in 0..<tokens {
            for j in 0..<k {
                let d = Int(s[t * k + j]) / slotsPerRank
                var seen = false
                for i in 0..<j where Int(s[t * k + i]) / slotsPerRank == d { seen = true; break }
                if !seen { counts[d] += 1 }
            }
        }
        let total = counts.reduce(0, +)
        guard total <= layout.capacity, tokens <= layout.tokenCapacity else {
            throw CommunicatorError.bufferTooSmall(
                rank: -1, needed: total * 8 * k, available: layout.capacity * 8 * k)
        }
        var fill = [Int](repeating: 0, count: numRanks)
        for d in 1..<max(numRanks, 1) { fill[d] = fill[d - 1] + counts[d - 1] }
        let sendToken = layout.sendToken.ints, meta = layout.sendMeta.ints
        let starts = layout.tokenRows.ints, rowIds = layout.tokenRows.ints + layout.tokenCapacity + 1
        var rowOf = [Int](repeating: 0, count: k)   // send row of pair j's destination for this token
        var next = 0
        for t in 0..<tokens {
            starts[t] = Int32(next)
            let first = next
            for j in 0..<k {
                let slot = Int(s[t * k + j]), d = slot / slotsPerRank
                var row = -1
                for i in 0..<j where Int(s[t * k + i]) / slotsPerRank == d { row = rowOf[i]; break }
                if row < 0 {
                    row = fill[d]
                    fill[d] += 1
                    sendToken[row] = Int32(t)
                    let m = meta + row * 2 * k
                    for q in 0..<k { m[2 * q] = -1; m[2 * q + 1] = 0 }
                    // Keep the token's rows sorted by destination (row ids grow with the rank).
                    var p = next
                    while p > first && rowIds[p - 1] > Int32(row) { rowIds[p] = rowIds[p - 1]; p -= 1 }
                    rowIds[p] = Int32(row)
                    next += 1
                }
                rowOf[j] = row
                let m = meta + row * 2 * k
                m[2 * j] = Int32(slot % slotsPerRank)
                m[2 * j + 1] = Int32(bitPattern: w[t * k + j].bitPattern)
            }
        }
        starts[tokens] = Int32(next)
        return counts
    }

    public func permute(
        hidden: HostBuffer, hiddenSize h: Int, layout: DispatchLayout<HostBuffer>, rows: Int, sendRows: HostBuffer
    ) throws {
        let src = hidden.floats, dst = sendRows.floats, tok = layout.sendToken.ints
        let parts = chunks(rows, minChunk: 64)
        parallelFor(parts.count) { i in
            for r in parts[i] { (dst + r * h).update(from: src + Int(tok[r]) * h, count: h) }
        }
    }

    public func arrange(
        recvMeta: HostBuffer, rows: Int, topK k: Int, slotsPerRank: Int, into layout: ExpertLayout<HostBuffer>
    ) throws -> [Int] {
        let meta = recvMeta.ints
        var counts = [Int](repeating: 0, count: slotsPerRank)
        for r in 0..<rows {
            for j in 0..<k {
                let s = Int(meta[(r * k + j) * 2])
                if s >= 0 {
                    guard s < slotsPerRank else {
                        throw PlacementError.invalidArgument("received slot \(s) is not in 0..<\(slotsPerRank)")
                    }
                    counts[s] += 1
                }
            }
        }
        guard rows * k <= layout.capacity else {
            throw CommunicatorError.bufferTooSmall(rank: -1, needed: rows * k * 4, available: layout.capacity * 4)
        }
        var fill = [Int](repeating: 0, count: slotsPerRank)
        for s in 1..<max(slotsPerRank, 1) { fill[s] = fill[s - 1] + counts[s - 1] }
        let entryRow = layout.entryRow.ints, pos = layout.entryPosition.ints
        for r in 0..<rows {
            for j in 0..<k {
                let s = Int(meta[(r * k + j) * 2])
                if s >= 0 {
                    let p = fill[s]
                    fill[s] += 1
                    entryRow[p] = Int32(r)
                    pos[r * k + j] = Int32(p)
                } else {
                    pos[r * k + j] = -1
                }
            }
        }
        return counts
    }

    public func gatherExpertRows(
        recvRows: HostBuffer, hiddenSize h: Int, layout: ExpertLayout<HostBuffer>, entries: Int, x: HostBuffer
    ) throws {
        let src = recvRows.floats, dst = x.floats, rowOf = layout.entryRow.ints
        let parts = chunks(entries, minChunk: 64)
        parallelFor(parts.count) { i in
            for p in parts[i] { (dst + p * h).update(from: src + Int(rowOf[p]) * h, count: h) }
        }
    }

    public func reduceExpertOutputs(
        y: HostBuffer, recvMeta: HostBuffer, layout: ExpertLayout<HostBuffer>, rows: Int, topK k: Int,
        hiddenSize h: Int, out: HostBuffer
    ) throws {
        let meta = recvMeta.ints, pos = layout.entryPosition.ints, src = y.floats, dst = out.floats
        let parts = chunks(rows, minChunk: 32)
        parallelFor(parts.count) { i in
            for r in parts[i] {
                let o = dst + r * h
                o.update(repeating: 0, count: h)
                for j in 0..<k {
                    let p = Int(pos[r * k + j])
                    if p < 0 { continue }
                    let w = Float(bitPattern: UInt32(bitPattern: meta[(r * k + j) * 2 + 1]))
                    Self.axpy(w, src + p * h, o, h)
                }
            }
        }
    }

    public func combine(
        returned: HostBuffer, layout: DispatchLayout<HostBuffer>, tokens: Int, hiddenSize h: Int, out: HostBuffer
    ) throws {
        let starts = layout.tokenRows.ints, rowIds = layout.tokenRows.ints + layout.tokenCapacity + 1
        let src = returned.floats, dst = out.floats
        let parts = chunks(tokens, minChunk: 32)
        parallelFor(parts.count) { i in
            for t in parts[i] {
                let o = dst + t * h
                o.update(repeating: 0, count: h)
                for q in Int(starts[t])..<Int(starts[t + 1]) { Self.axpy(1, src + Int(rowIds[q]) * h, o, h) }
            }
        }
    }

    /// `y += a · x` over `n` floats.
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        let av = SIMD8<Float>(repeating: a)
        while i &+ 8 <= n {
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: yv + av * xv, as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < n {
            y[i] += a * x[i]
            i &+= 1
        }
    }
}
