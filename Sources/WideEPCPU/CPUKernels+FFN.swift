import WideEPCore
import WideEPRuntime

extension CPUKernels {
    public func groupedFFN(
        x: HostBuffer, slotCounts: [Int], weights: SlotWeights<HostBuffer>, scratch: HostBuffer, y: HostBuffer
    ) throws {
        let h = weights.hiddenSize, inter = weights.intermediateSize
        var starts = [Int](repeating: 0, count: slotCounts.count + 1)
        for s in 0..<slotCounts.count { starts[s + 1] = starts[s] + slotCounts[s] }
        // Tasks: (slot, row block) so one hot slot still spreads over the workers.
        let block = 64
        var tasks: [(slot: Int, rows: Range<Int>)] = []
        for s in 0..<slotCounts.count where slotCounts[s] > 0 {
            var r = starts[s]
            while r < starts[s + 1] {
                tasks.append((s, r..<min(r + block, starts[s + 1])))
                r += block
            }
        }
        let w13 = weights.w13.floats, w2 = weights.w2.floats
        let xs = x.floats, hs = scratch.floats, ys = y.floats
        parallelFor(tasks.count) { i in
            let (s, rows) = tasks[i]
            Self.swiGLU(
                x: xs, rows: rows, hiddenSize: h, inter: inter, w13: w13 + s * 2 * inter * h,
                w2: w2 + s * h * inter, scratch: hs, y: ys, accumulate: false, rowScale: nil)
        }
    }

    public func addSharedExpert(
        hidden: HostBuffer, tokens: Int, hiddenSize h: Int, dense: DenseWeights<HostBuffer>, scratch: HostBuffer,
        out: HostBuffer
    ) throws {
        guard let s13 = dense.sharedW13, let s2 = dense.sharedW2, tokens > 0 else { return }
        let inter = dense.sharedIntermediate
        var gate: [Float]?
        if let g = dense.sharedGate {
            gate = (0..<tokens).map { t in MoEMath.sigmoid(MoEMath.dot(hidden.floats + t * h, g.floats, count: h)) }
        }
        let parts = chunks(tokens, minChunk: 32)
        let xs = hidden.floats, hs = scratch.floats, ys = out.floats
        gate.withUnsafeBufferPointerOrNil { gp in
            parallelFor(parts.count) { i in
                Self.swiGLU(
                    x: xs, rows: parts[i], hiddenSize: h, inter: inter, w13: s13.floats, w2: s2.floats, scratch: hs,
                    y: ys, accumulate: true, rowScale: gp)
            }
        }
    }

    public func writeSlot(
        w13: UnsafeBufferPointer<Float>, w2: UnsafeBufferPointer<Float>, into weights: SlotWeights<HostBuffer>,
        localSlot: Int
    ) throws {
        let (n13, n2) = try weights.checkSlotWrite(localSlot: localSlot, w13: w13.count, w2: w2.count)
        (weights.w13.floats + localSlot * n13).update(from: w13.baseAddress!, count: n13)
        (weights.w2.floats + localSlot * n2).update(from: w2.baseAddress!, count: n2)
    }

    /// SwiGLU on rows `rows` of `x` ([*, H]): scratch rows hold [gate | up] (2I wide) then the activation in place,
    /// and `y[r] = act[r]·W2ᵀ` (or `y[r] += scale[r] · …` when accumulating).
    static func swiGLU(
        x: UnsafePointer<Float>, rows: Range<Int>, hiddenSize h: Int, inter: Int, w13: UnsafePointer<Float>,
        w2: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
        accumulate: Bool, rowScale: UnsafePointer<Float>?
    ) {
        let depth = max(h, inter)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: CPUGEMM.packFloats(k: depth)) { pack in
            let p = pack.baseAddress!
            CPUGEMM.gemm(a: x, lda: h, b: w13, ldb: h, c: scratch, ldc: 2 * inter, rows: rows, cols: 0..<(2 * inter),
                         k: h, pack: p)
            for r in rows {
                let row = scratch + r * 2 * inter
                for i in 0..<inter { row[i] = MoEMath.silu(row[i]) * row[inter + i] }
            }
            CPUGEMM.gemm(a: scratch, lda: 2 * inter, b: w2, ldb: inter, c: y, ldc: h, rows: rows, cols: 0..<h,
                         k: inter, pack: p, accumulate: accumulate, rowScale: rowScale)
        }
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with the array's base address, or nil.
    func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: return body(nil)
        }
    }
}
