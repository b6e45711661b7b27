import CUDADriver

/// How the per-slot expert GEMMs are issued.
public enum GroupedGEMMPath: String, CaseIterable, Sendable, Codable {
    /// One `cublasGemmEx` per non-empty slot.
    case loop
    /// One `cublasGemmGroupedBatchedEx` over the non-empty slots (cuBLAS ≥ 12.5).
    case grouped
    /// `grouped` when slots are small (mean rows per busy slot < `SlotGEMM.groupedBelowRows`), else `loop`.
    case auto
}

extension GPU {
    /// Row-major `y[m, n] = x[m, k] · W[n, k]ᵀ` with bf16 x and W, fp32 accumulation, and bf16 (or float32) y.
    ///
    /// cuBLAS is column-major, so this is `C(n×m) = Wᵀ… `: transa = T, transb = N, A = W (lda k), B = x (ldb k),
    /// C = y (ldc n).
    public func gemmXWt(
        x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, rows m: Int, outFeatures n: Int, inFeatures k: Int,
        floatOutput: Bool = false, handle: CUBLASHandle? = nil
    ) throws {
        if m == 0 { return }
        let h = try handle ?? cublas()
        var alpha: Float = 1, beta: Float = 0
        let outType = floatOutput ? CUBLASConst.r32F : CUBLASConst.r16BF
        try h.api.check(
            h.api.cublasGemmEx(
                h.handle, CUBLASConst.opT, CUBLASConst.opN, Int32(n), Int32(m), Int32(k), &alpha, w,
                CUBLASConst.r16BF, Int32(k), x, CUBLASConst.r16BF, Int32(k), &beta, y, outType, Int32(n),
                CUBLASConst.compute32F, CUBLASConst.gemmDefault),
            "cublasGemmEx(m \(m), n \(n), k \(k))")
    }
}

/// One GEMM per local slot over expert-major rows: `Y[rows of s] = X[rows of s] · W[s]ᵀ`, bf16 in and out.
///
/// Owns the device pointer arrays the grouped path needs (sized for `maxSlots`), so a call allocates nothing.
public final class SlotGEMM {
    let gpu: GPU
    let maxSlots: Int
    /// A ring of pointer-array regions, so a call never overwrites pinned memory an earlier async copy still reads.
    static let ringSize = 4
    let pointerArrays: DeviceArray<UInt64>
    let pinned: PinnedBuffer<UInt64>
    let copied: [CUDAEvent]
    var used = [Bool](repeating: false, count: ringSize)
    var next = 0
    /// Streams the loop path spreads its GEMMs over (1 = everything on the GPU's stream). A skinny expert GEMM fills
    /// only part of the chip, so independent slots run side by side.
    public var streamCount = 4
    /// Most worker streams.
    public static let maxStreams = 8
    /// `auto` picks `grouped` below this mean number of rows per busy slot (decode-sized batches).
    public static let groupedBelowRows = 48
    let workers: [CUDAStream]
    let workerHandles: [CUBLASHandle]
    let fork: CUDAEvent
    let joins: [CUDAEvent]

    public init(gpu: GPU, maxSlots: Int) throws {
        self.gpu = gpu
        self.maxSlots = maxSlots
        pointerArrays = try DeviceArray(gpu, count: Self.ringSize * 3 * maxSlots)
        pinned = try PinnedBuffer(gpu, count: Self.ringSize * 3 * maxSlots)
        copied = try (0..<Self.ringSize).map { _ in try CUDAEvent(context: gpu.context, timing: false) }
        workers = try (0..<Self.maxStreams).map { _ in try CUDAStream(context: gpu.context) }
        workerHandles = try workers.map { try CUBLASHandle(stream: $0) }
        fork = try CUDAEvent(context: gpu.context, timing: false)
        joins = try (0..<Self.maxStreams).map { _ in try CUDAEvent(context: gpu.context, timing: false) }
    }

    /// Whether the loaded cuBLAS has `cublasGemmGroupedBatchedEx`.
    public var groupedAvailable: Bool { (try? gpu.cublas().api.cublasGemmGroupedBatchedEx) != nil }

    /// Runs `Y_s = X_s · W_sᵀ` for every slot with `slotRows[s] > 0`.
    ///
    /// - Parameters:
    ///   - x: bf16 [Σ rows, k], slot after slot; `y`: bf16 [Σ rows, n].
    ///   - w: bf16 [slots, n, k] (slot weights, nn.Linear layout).
    public func run(
        x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, slotRows: [Int], n: Int, k: Int, path: GroupedGEMMPath
    ) throws {
        precondition(slotRows.count <= maxSlots)
        switch resolve(path, slotRows: slotRows) {
        case .grouped:
            try grouped(x: x, w: w, y: y, slotRows: slotRows, n: n, k: k)
        default:
            try loop(x: x, w: w, y: y, slotRows: slotRows, n: n, k: k)
        }
    }

    /// The concrete path `auto` stands for with these slot sizes.
    public func resolve(_ path: GroupedGEMMPath, slotRows: [Int]) -> GroupedGEMMPath {
        guard path == .auto else { return path }
        let busy = slotRows.filter { $0 > 0 }
        guard !busy.isEmpty, groupedAvailable else { return .loop }
        return busy.reduce(0, +) < Self.groupedBelowRows * busy.count ? .grouped : .loop
    }

    private func grouped(x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, slotRows: [Int], n: Int, k: Int) throws {
        let h = try gpu.cublas()
        guard let fn = h.api.cublasGemmGroupedBatchedEx else {
            throw CUDAError.missingSymbol(library: "cuBLAS", symbol: "cublasGemmGroupedBatchedEx (needs cuBLAS ≥ 12.5)")
        }
        var ms: [Int32] = [], aPtr: [UInt64] = [], bPtr: [UInt64] = [], cPtr: [UInt64] = []
        var row = 0
        for (s, rows) in slotRows.enumerated() where rows > 0 {
            ms.append(Int32(rows))
            aPtr.append(w + UInt64(s * n * k * 2))
            bPtr.append(x + UInt64(row * k * 2))
            cPtr.append(y + UInt64(row * n * 2))
            row += rows
        }
        let g = ms.count
        if g == 0 { return }
        // Take the next ring region; wait until the copy that last read its pinned half has run.
        let r = next
        next = (next + 1) % Self.ringSize
        if used[r] { try copied[r].synchronize() }
        let region = r * 3 * maxSlots
        let p = pinned.pointer + region
        for i in 0..<g {
            p[i] = aPtr[i]
            p[g + i] = bPtr[i]
            p[2 * g + i] = cPtr[i]
        }
        let base = pointerArrays.pointer + UInt64(region * 8)
        try gpu.context.api.check(
            gpu.context.api.cuMemcpyHtoDAsync(base, UnsafeRawPointer(p), 3 * g * 8, gpu.stream.handle),
            "cuMemcpyHtoDAsync(grouped GEMM pointers)")
        try copied[r].record(on: gpu.stream)
        used[r] = true
        let transA = [Int32](repeating: CUBLASConst.opT, count: g)
        let transB = [Int32](repeating: CUBLASConst.opN, count: g)
        let nArr = [Int32](repeating: Int32(n), count: g), kArr = [Int32](repeating: Int32(k), count: g)
        let ones = [Int32](repeating: 1, count: g)
        let alpha = [Float](repeating: 1, count: g), beta = [Float](repeating: 0, count: g)
        try h.api.check(
            fn(
                h.handle, transA, transB, nArr, ms, kArr, alpha, base, CUBLASConst.r16BF, kArr, base + UInt64(8 * g),
                CUBLASConst.r16BF, kArr, beta, base + UInt64(16 * g), CUBLASConst.r16BF, nArr, Int32(g), ones,
                CUBLASConst.compute32F),
            "cublasGemmGroupedBatchedEx(\(g) groups, n \(n), k \(k))")
    }
}
