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
