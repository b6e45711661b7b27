import CUDADriver
import WideEPCPU
import WideEPCore
import WideEPRuntime

extension CUDAMoEKernels {
    // MARK: Dispatch

    public func layout(
        slots: CUDABuffer, weights: CUDABuffer, tokens: Int, topK k: Int, slotsPerRank: Int, numRanks: Int,
        into layout: DispatchLayout<CUDABuffer>
    ) throws -> [Int] {
        // Host-returning by contract: the counts size the all-to-all. The metadata is small ([T, K] ints), so the CPU
        // reference builds the tables and they are uploaded.
        let n = tokens * k
        let hs = try host(slots, elements: n), hw = try host(weights, elements: n)
        let cap = layout.capacity, tc = layout.tokenCapacity
        let hl = DispatchLayout<HostBuffer>(
            capacity: cap, sendToken: HostBuffer(byteCount: cap * 4), sendMeta: HostBuffer(byteCount: cap * 8 * k),
            tokenRows: HostBuffer(byteCount: (tc + 1 + cap) * 4), tokenCapacity: tc)
        let counts = try cpu.layout(
            slots: hs, weights: hw, tokens: tokens, topK: k, slotsPerRank: slotsPerRank, numRanks: numRanks, into: hl)
        let rows = counts.reduce(0, +)
        try put(hl.sendToken, elements: rows, into: layout.sendToken)
        try put(hl.sendMeta, elements: rows * 2 * k, into: layout.sendMeta)
        try put(hl.tokenRows, elements: tc + 1 + cap, into: layout.tokenRows)
        return counts
    }

    public func permute(
        hidden: CUDABuffer, hiddenSize: Int, layout: DispatchLayout<CUDABuffer>, rows: Int, sendRows: CUDABuffer
    ) throws {
        try gatherRows(src: hidden, index: layout.sendToken.devicePointer, rows: rows, width: hiddenSize, dst: sendRows)
    }

    func gatherRows(src: CUDABuffer, index: CUdeviceptr, rows: Int, width: Int, dst: CUDABuffer) throws {
        guard rows > 0 else { return }
        try gpu.launch(try fn("gather_rows_f32"), grid: (rows, 1, 1), block: (256, 1, 1),
                       args: [.ptr(src.devicePointer), .ptr(index), .int(rows), .int(width), .ptr(dst.devicePointer)],
                       name: "gather_rows_f32")
    }

    public func arrange(
        recvMeta: CUDABuffer, rows: Int, topK k: Int, slotsPerRank: Int, into layout: ExpertLayout<CUDABuffer>
    ) throws -> [Int] {
        let hm = try host(recvMeta, elements: rows * 2 * k)
        let cap = layout.capacity
        let hl = ExpertLayout<HostBuffer>(
            capacity: cap, entryRow: HostBuffer(byteCount: cap * 4), entryPosition: HostBuffer(byteCount: cap * 4))
        let counts = try cpu.arrange(recvMeta: hm, rows: rows, topK: k, slotsPerRank: slotsPerRank, into: hl)
        try put(hl.entryRow, elements: counts.reduce(0, +), into: layout.entryRow)
        try put(hl.entryPosition, elements: rows * k, into: layout.entryPosition)
        return counts
    }

    public func gatherExpertRows(
        recvRows: CUDABuffer, hiddenSize: Int, layout: ExpertLayout<CUDABuffer>, entries: Int, x: CUDABuffer
    ) throws {
        try gatherRows(src: recvRows, index: layout.entryRow.devicePointer, rows: entries, width: hiddenSize, dst: x)
    }

    // MARK: Expert compute

    public func groupedFFN(
        x: CUDABuffer, slotCounts: [Int], weights: SlotWeights<CUDABuffer>, scratch: CUDABuffer, y: CUDABuffer
    ) throws {
        let h = weights.hiddenSize, inter = weights.intermediateSize
        var row = 0
        for (s, n) in slotCounts.enumerated() where n > 0 {
            try gpu.gemmF32(
                x: x.address(row * h), ldx: h, w: weights.w13.address(s * 2 * inter * h), ldw: h,
                y: scratch.address(row * 2 * inter), ldy: 2 * inter, rows: n, outFeatures: 2 * inter, inFeatures: h,
                fastBF16: true)
            row += n
        }
        try siluMul(scratch.devicePointer, rows: row, inter: inter, scale: nil)
        row = 0
        for (s, n) in slotCounts.enumerated() where n > 0 {
            try gpu.gemmF32(
                x: scratch.address(row * 2 * inter), ldx: 2 * inter, w: weights.w2.address(s * h * inter), ldw: inter,
                y: y.address(row * h), ldy: h, rows: n, outFeatures: h, inFeatures: inter, fastBF16: true)
            row += n
        }
    }

    func siluMul(_ y: CUdeviceptr, rows: Int, inter: Int, scale: CUdeviceptr?) throws {
        guard rows > 0 else { return }
        try gpu.launch(try fn("silu_mul_f32"), grid: (blocks(rows * inter), 1, 1), block: (256, 1, 1),
                       args: [.ptr(y), .i64(Int64(rows)), .int(inter), .ptr(scale ?? 0)], name: "silu_mul_f32")
    }

    public func reduceExpertOutputs(
        y: CUDABuffer, recvMeta: CUDABuffer, layout: ExpertLayout<CUDABuffer>, rows: Int, topK k: Int, hiddenSize: Int,
        out: CUDABuffer
    ) throws {
        guard rows > 0 else { return }
        try gpu.launch(
            try fn("reduce_expert_f32"), grid: (rows, 1, 1), block: (256, 1, 1),
            args: [
                .ptr(y.devicePointer), .ptr(recvMeta.devicePointer), .ptr(layout.entryPosition.devicePointer),
                .int(rows), .int(k), .int(hiddenSize), .ptr(out.devicePointer),
            ], name: "reduce_expert_f32")
    }

    // MARK: Combine

    public func combine(
        returned: CUDABuffer, layout: DispatchLayout<CUDABuffer>, tokens: Int, hiddenSize: Int, out: CUDABuffer
    ) throws {
        guard tokens > 0 else { return }
        let starts = layout.tokenRows.devicePointer
        let rowIds = layout.tokenRows.address(layout.tokenCapacity + 1)
        try gpu.launch(
            try fn("combine_csr_f32"), grid: (tokens, 1, 1), block: (256, 1, 1),
            args: [.ptr(returned.devicePointer), .ptr(starts), .ptr(rowIds), .int(tokens), .int(hiddenSize),
                   .ptr(out.devicePointer)], name: "combine_csr_f32")
    }

    public func addSharedExpert(
        hidden: CUDABuffer, tokens: Int, hiddenSize h: Int, dense: DenseWeights<CUDABuffer>, scratch: CUDABuffer,
        out: CUDABuffer
    ) throws {
        guard let s13 = dense.sharedW13, let s2 = dense.sharedW2, tokens > 0 else { return }
        let si = dense.sharedIntermediate
        var gate: DeviceArray<Float>?
        if let g = dense.sharedGate {
            let gv = try scratchFloats("shared.gate", tokens)
            try gpu.gemmF32(x: hidden.devicePointer, ldx: h, w: g.devicePointer, ldw: h, y: gv.pointer, ldy: 1,
                            rows: tokens, outFeatures: 1, inFeatures: h, fastBF16: false)
            try gpu.launch(try fn("sigmoid_f32"), grid: ((tokens + 255) / 256, 1, 1), block: (256, 1, 1),
                           args: [.ptr(gv.pointer), .int(tokens)], name: "sigmoid_f32")
            gate = gv
        }
        try gpu.gemmF32(x: hidden.devicePointer, ldx: h, w: s13.devicePointer, ldw: h, y: scratch.devicePointer,
                        ldy: 2 * si, rows: tokens, outFeatures: 2 * si, inFeatures: h, fastBF16: true)
        try siluMul(scratch.devicePointer, rows: tokens, inter: si, scale: gate?.pointer)
        try gpu.gemmF32(x: scratch.devicePointer, ldx: 2 * si, w: s2.devicePointer, ldw: si, y: out.devicePointer,
                        ldy: h, rows: tokens, outFeatures: h, inFeatures: si, accumulate: true, fastBF16: true)
        try gpu.synchronize()
    }

    // MARK: Model glue and migration

    public func rmsNorm(x: CUDABuffer, tokens: Int, hiddenSize: Int, eps: Float, out: CUDABuffer) throws {
        guard tokens > 0 else { return }
        try gpu.launch(try fn("rms_norm_f32"), grid: (tokens, 1, 1), block: (256, 1, 1),
                       args: [.ptr(x.devicePointer), .int(tokens), .int(hiddenSize), .f32(eps), .ptr(out.devicePointer)],
                       name: "rms_norm_f32")
    }

    public func addInPlace(_ x: CUDABuffer, _ y: CUDABuffer, count: Int) throws {
        guard count > 0 else { return }
        try gpu.launch(try fn("add_f32"), grid: (blocks(count), 1, 1), block: (256, 1, 1),
                       args: [.ptr(x.devicePointer), .ptr(y.devicePointer), .i64(Int64(count))], name: "add_f32")
    }

    public func writeSlot(
        w13: UnsafeBufferPointer<Float>, w2: UnsafeBufferPointer<Float>, into weights: SlotWeights<CUDABuffer>,
        localSlot: Int
    ) throws {
        // Migration runs on its own thread and stream so the rank's compute stream is not serialised behind it.
        try enqueueSlotWrite(w13: w13, w2: w2, into: weights, localSlot: localSlot)
        try copyStream.synchronize()
    }
}
