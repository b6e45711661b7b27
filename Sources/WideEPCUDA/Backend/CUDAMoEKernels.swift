import CUDADriver
import WideEPCPU
import WideEPCore
import WideEPRuntime

/// `MoEKernels` on one GPU over float32 `CUDABuffer`s: the runtime's MoE layer (`wide-ep run/layer --device cuda`).
///
/// Routing, counting, slot mapping and every row operation are CUDA kernels; the expert and shared GEMMs are cuBLAS
/// with bf16 tensor cores and fp32 accumulation (`CUBLAS_COMPUTE_32F_FAST_16BF`), the router GEMM exact float32.
/// The two host-returning layout steps (`layout`, `arrange`) read their small int metadata back and reuse the CPU
/// reference's algorithm, then upload the tables; the bf16 fast path for benchmarks is `CUDAMoELayer`.
public final class CUDAMoEKernels: MoEKernels, @unchecked Sendable {
    public typealias Buffer = CUDABuffer

    /// The GPU.
    public let gpu: GPU
    let copyStream: CUDAStream
    let cpu = CPUKernels(workers: 1)
    let scratch = KernelScratch()
    /// Host ranges page-locked by `pinHostMemory`, where slot copies are cut (see `enqueueSlotWrite`).
    let pinned = PinnedRanges()

    public init(gpu: GPU) throws {
        self.gpu = gpu
        copyStream = try CUDAStream(context: gpu.context)
    }

    public var deviceName: String { WideEPCUDA.deviceName }

    func fn(_ name: String, _ source: String = RuntimeSource.source, _ defines: [String: String] = [:]) throws
        -> CUhandle?
    {
        try gpu.kernels.function(
            KernelKey(name: "runtime.cu", source: source, defines: defines, architecture: gpu.architecture), name)
    }

    func blocks(_ n: Int, _ threads: Int = 256) -> Int { max(1, min(gpu.multiprocessors * 16, (n + threads - 1) / threads)) }

    // MARK: Memory

    public func allocate(_ dtype: DType, count: Int) throws -> CUDABuffer {
        try gpu.context.makeCurrent()
        return try CUDABuffer(gpu, elements: count)
    }

    func checkRange(_ buffer: CUDABuffer, _ offset: Int, _ bytes: Int) throws {
        guard offset >= 0, offset * 4 + bytes <= buffer.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: 0, needed: offset * 4 + bytes, available: buffer.byteCount)
        }
    }

    public func upload(_ source: UnsafeRawBufferPointer, to buffer: CUDABuffer, offset: Int) throws {
        try checkRange(buffer, offset, source.count)
        guard source.count > 0 else { return }
        let api = gpu.context.api
        try api.check(api.cuMemcpyHtoDAsync(buffer.address(offset), source.baseAddress, source.count, gpu.stream.handle),
                      "cuMemcpyHtoDAsync")
        try gpu.synchronize()
    }

    public func download(_ buffer: CUDABuffer, offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        try checkRange(buffer, offset, destination.count)
        guard destination.count > 0 else { return }
        let api = gpu.context.api
        try api.check(
            api.cuMemcpyDtoHAsync(destination.baseAddress, buffer.address(offset), destination.count, gpu.stream.handle),
            "cuMemcpyDtoHAsync")
        try gpu.synchronize()
    }

    public func copy(
        _ source: CUDABuffer, sourceOffset: Int, to destination: CUDABuffer, destinationOffset: Int, count: Int
    ) throws {
        try checkRange(source, sourceOffset, count * 4)
        try checkRange(destination, destinationOffset, count * 4)
        let api = gpu.context.api
        try api.check(
            api.cuMemcpyDtoDAsync(destination.address(destinationOffset), source.address(sourceOffset), count * 4,
                                  gpu.stream.handle), "cuMemcpyDtoDAsync")
    }

    func host(_ b: CUDABuffer, elements: Int) throws -> HostBuffer {
        let h = HostBuffer(byteCount: elements * 4)
        try download(b, offset: 0, into: UnsafeMutableRawBufferPointer(start: h.raw, count: elements * 4))
        return h
    }

    func put(_ h: HostBuffer, elements: Int, into b: CUDABuffer) throws {
        try upload(UnsafeRawBufferPointer(start: h.raw, count: elements * 4), to: b, offset: 0)
    }

    // MARK: Routing

    public func route(
        hidden: CUDABuffer, tokens: Int, dense: DenseWeights<CUDABuffer>, logitOffset: CUDABuffer?, config: MoEConfig,
        experts: CUDABuffer, weights: CUDABuffer
    ) throws {
        guard tokens > 0 else { return }
        let e = config.numExperts, h = config.hiddenSize
        let logits = try scratchFloats("route.logits", tokens * e)
        try gpu.gemmF32(x: hidden.devicePointer, ldx: h, w: dense.router.devicePointer, ldw: h, y: logits.pointer, ldy: e,
                        rows: tokens, outFeatures: e, inFeatures: h, fastBF16: false)
        if let off = logitOffset {
            try gpu.launch(try fn("add_row_offset_f32"), grid: (blocks(tokens * e), 1, 1), block: (256, 1, 1),
                           args: [.ptr(logits.pointer), .ptr(off.devicePointer), .int(tokens), .int(e)],
                           name: "add_row_offset_f32")
        }
        let bias = try dense.correctionBias.map { b -> DeviceArray<Float> in
            let d = try scratchFloats("route.bias", e)
            try gpu.context.api.check(
                gpu.context.api.cuMemcpyDtoDAsync(d.pointer, b.devicePointer, e * 4, gpu.stream.handle), "copy bias")
            return d
        }
        let k = CUDAKernels(gpu: gpu, config: config)
        let ex = try scratchInts("route.experts", tokens * config.topK)
        let w = try scratchFloats("route.weights", tokens * config.topK)
        try k.route(logits: logits, bias: config.hasCorrectionBias ? bias : nil, tokens: tokens, experts: ex, weights: w)
        let api = gpu.context.api, n = tokens * config.topK * 4
        try api.check(api.cuMemcpyDtoDAsync(experts.devicePointer, ex.pointer, n, gpu.stream.handle), "copy experts")
        try api.check(api.cuMemcpyDtoDAsync(weights.devicePointer, w.pointer, n, gpu.stream.handle), "copy weights")
        try gpu.synchronize()
    }

    public func countExperts(experts: CUDABuffer, tokens: Int, topK: Int, numExperts: Int, counts: CUDABuffer) throws {
        let n = tokens * topK
        let api = gpu.context.api
        try api.check(api.cuMemsetD8Async(counts.devicePointer, 0, numExperts * 4, gpu.stream.handle), "memset counts")
        let f = try gpu.kernels.function(
            KernelKey(name: "stats.cu", source: StatsSource.source, defines: ["NE": "\(numExperts)"],
                      architecture: gpu.architecture), "count_experts")
        try gpu.launch(f, grid: (blocks(n, 1024), 1, 1), block: (256, 1, 1),
                       args: [.ptr(experts.devicePointer), .int(n), .ptr(counts.devicePointer)], name: "count_experts")
    }

    public func mapToSlots(experts: CUDABuffer, tokens: Int, topK: Int, split: SlotSplit, slots: CUDABuffer) throws {
        let p = split.placement, n = tokens * topK, e = p.numExperts, ns = p.numSlots
        // One upload: the packed SlotMap tables, then −1 as every slot's row start (positions are unused here).
        let host = split.map.packed + [Int32](repeating: -1, count: ns)
        let packed = try scratchInts("map.tables", host.count)
        try packed.upload(host, gpu: gpu)
        let tables = try slotTables(p)
        let position = try scratchInts("map.position", max(n, 1))
        let f = try gpu.kernels.function(
            KernelKey(name: "layout.cu", source: LayoutSource.source, defines: ["NK": "\(topK)"],
                      architecture: gpu.architecture), "map_slots_local")
        try gpu.launch(
            f, grid: (e, 1, 1), block: (1024, 1, 1),
            args: [
                .ptr(experts.devicePointer), .int(n), .ptr(packed.pointer), .int(e), .int(ns),
                .ptr(tables.replicaStart.pointer), .ptr(tables.replicaSlot.pointer),
                .ptr(packed.pointer + UInt64((2 * e + 3 * ns) * 4)), .ptr(slots.devicePointer), .ptr(position.pointer),
            ], name: "map_slots_local")
        try gpu.synchronize()
    }
}
