import CUDADriver

extension SlotGEMM {
    /// One `cublasGemmEx` per busy slot, spread over `streamCount` streams forked from and joined back into the GPU's
    /// stream. Slots go largest first to the least-loaded stream (LPT), so the streams finish together.
    func loop(x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, slotRows: [Int], n: Int, k: Int) throws {
        var jobs: [(slot: Int, row: Int, rows: Int)] = []
        var row = 0
        for (s, rows) in slotRows.enumerated() where rows > 0 {
            jobs.append((s, row, rows))
            row += rows
        }
        let streams = max(1, min(streamCount, workers.count, jobs.count))
        func gemm(_ j: (slot: Int, row: Int, rows: Int), _ handle: CUBLASHandle?) throws {
            try gpu.gemmXWt(
                x: x + UInt64(j.row * k * 2), w: w + UInt64(j.slot * n * k * 2), y: y + UInt64(j.row * n * 2),
                rows: j.rows, outFeatures: n, inFeatures: k, handle: handle)
        }
        if streams == 1 {
            for j in jobs { try gemm(j, nil) }
            return
        }
        try fork.record(on: gpu.stream)
        for i in 0..<streams { try workers[i].wait(fork) }
        var load = [Int](repeating: 0, count: streams)
        for j in jobs.sorted(by: { $0.rows > $1.rows }) {
            let i = load.indices.min { load[$0] < load[$1] }!
            load[i] += j.rows
            try gemm(j, workerHandles[i])
        }
        for i in 0..<streams {
            try joins[i].record(on: workers[i])
            try gpu.stream.wait(joins[i])
        }
    }
}

extension SlotGEMM {
    /// The whole routed SwiGLU FFN over expert-major rows: `ys = act(xs · W13ᵀ) · W2ᵀ` per busy slot.
    ///
    /// On the multi-stream loop path with prefill-sized slots each slot's chain (GEMM W13 → `silu` → GEMM W2) runs on one worker stream, so a
    /// slot's down projection overlaps other slots' up projections with no barrier between the two GEMM phases.
    /// Otherwise (grouped, or one stream) it is GEMM W13 for all slots, one `silu` over all rows, GEMM W2 for all.
    ///
    /// - Parameters: `silu(y13Rows, actRows, rows, stream)` launches the activation on `stream` (nil: the GPU's).
    func ffn(
        xs: CUdeviceptr, w13: CUdeviceptr, w2: CUdeviceptr, y13: CUdeviceptr, act: CUdeviceptr, ys: CUdeviceptr,
        slotRows: [Int], hidden h: Int, inter: Int, path: GroupedGEMMPath,
        silu: (CUdeviceptr, CUdeviceptr, Int, CUDAStream?) throws -> Void
    ) throws {
        let resolved = resolve(path, slotRows: slotRows)
        let busy = slotRows.filter { $0 > 0 }.count, total = slotRows.reduce(0, +)
        let streams = max(1, min(streamCount, workers.count, busy))
        // Decode-sized slots: a per-slot `silu` launch costs more than it overlaps (H200: 4.2 vs 3.3 ms at 128
        // tokens), so small slots keep the two GEMM phases with one activation launch between them.
        if resolved == .grouped || streams == 1 || total < Self.groupedBelowRows * busy {
            try run(x: xs, w: w13, y: y13, slotRows: slotRows, n: 2 * inter, k: h, path: resolved)
            try silu(y13, act, slotRows.reduce(0, +), nil)
            try run(x: act, w: w2, y: ys, slotRows: slotRows, n: h, k: inter, path: resolved)
            return
        }
        var jobs: [(slot: Int, row: Int, rows: Int)] = []
        var row = 0
        for (s, rows) in slotRows.enumerated() where rows > 0 {
            jobs.append((s, row, rows))
            row += rows
        }
        try fork.record(on: gpu.stream)
        for i in 0..<streams { try workers[i].wait(fork) }
        var load = [Int](repeating: 0, count: streams)
        for j in jobs.sorted(by: { $0.rows > $1.rows }) {
            let i = load.indices.min { load[$0] < load[$1] }!
            load[i] += j.rows
            let y = y13 + UInt64(j.row * 2 * inter * 2), a = act + UInt64(j.row * inter * 2)
            try gpu.gemmXWt(
                x: xs + UInt64(j.row * h * 2), w: w13 + UInt64(j.slot * 2 * inter * h * 2), y: y, rows: j.rows,
                outFeatures: 2 * inter, inFeatures: h, handle: workerHandles[i])
            try silu(y, a, j.rows, workers[i])
            try gpu.gemmXWt(
                x: a, w: w2 + UInt64(j.slot * h * inter * 2), y: ys + UInt64(j.row * h * 2), rows: j.rows,
                outFeatures: h, inFeatures: inter, handle: workerHandles[i])
        }
        for i in 0..<streams {
            try joins[i].record(on: workers[i])
            try gpu.stream.wait(joins[i])
        }
    }
}
