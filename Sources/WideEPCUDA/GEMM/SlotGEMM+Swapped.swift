import CUDADriver

extension SlotGEMM {
    /// Timing probe for the other GEMM orientation: tokens on cuBLAS's M side, features on N, so each slot's output is
    /// feature-major (`y[f · rows + r]`). It computes the same products as `run` for the expert GEMM benchmark
    /// (`wide-ep bench moe` reports it next to the token-on-N layout the layer uses); the layer does not use it.
    ///
    /// - Parameters: `x` is token-major [Σ rows, k] for the first GEMM (`featureMajorInput` false), or the previous
    ///   probe's feature-major output (`true`, leading dimension = the slot's rows).
    func runSwapped(
        x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, slotRows: [Int], n: Int, k: Int, featureMajorInput: Bool,
        ldxStride: Int
    ) throws {
        var jobs: [(slot: Int, row: Int, rows: Int)] = []
        var row = 0
        for (s, rows) in slotRows.enumerated() where rows > 0 {
            jobs.append((s, row, rows))
            row += rows
        }
        let streams = max(1, min(streamCount, workers.count, jobs.count))
        try fork.record(on: gpu.stream)
        for i in 0..<streams { try workers[i].wait(fork) }
        var load = [Int](repeating: 0, count: streams)
        var alpha: Float = 1, beta: Float = 0
        for j in jobs.sorted(by: { $0.rows > $1.rows }) {
            let i = load.indices.min { load[$0] < load[$1] }!
            load[i] += j.rows
            let h = workerHandles[i]
            let a = x + UInt64(j.row * (featureMajorInput ? ldxStride : k) * 2)
            try h.api.check(
                h.api.cublasGemmEx(
                    h.handle, featureMajorInput ? CUBLASConst.opN : CUBLASConst.opT, CUBLASConst.opN, Int32(j.rows),
                    Int32(n), Int32(k), &alpha, a, CUBLASConst.r16BF, Int32(featureMajorInput ? j.rows : k),
                    w + UInt64(j.slot * n * k * 2), CUBLASConst.r16BF, Int32(k), &beta, y + UInt64(j.row * n * 2),
                    CUBLASConst.r16BF, Int32(j.rows), CUBLASConst.compute32F, CUBLASConst.gemmDefault),
                "cublasGemmEx(swapped, m \(j.rows), n \(n), k \(k))")
        }
        for i in 0..<streams {
            try joins[i].record(on: workers[i])
            try gpu.stream.wait(joins[i])
        }
    }
}
