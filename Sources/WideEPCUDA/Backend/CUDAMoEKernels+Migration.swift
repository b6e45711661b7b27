import CUDADriver
import Foundation
import WideEPCore
import WideEPRuntime

/// A CUDA event handed between the rank thread and the migration thread as a `MoEKernels` marker.
final class StreamMarker: @unchecked Sendable {
    /// The event (timing disabled: it only orders work).
    let event: CUDAEvent

    init(_ event: CUDAEvent) { self.event = event }
}

extension CUDAMoEKernels {
    // MARK: Layer-wise migration

    /// Records an event on the compute stream after the forward's slot reads (GEMMs on `weights`).
    public func markSlotReads(_ weights: SlotWeights<CUDABuffer>) throws -> AnyObject? {
        try gpu.context.makeCurrent()
        let e = try CUDAEvent(context: gpu.context, timing: false)
        try e.record(on: gpu.stream)
        return StreamMarker(e)
    }

    /// The copy stream waits, on the device, for the compute stream's reads of the slots about to be rewritten.
    public func beginSlotWrites(after readsDone: AnyObject?) throws {
        guard let m = readsDone as? StreamMarker else { return }
        try gpu.context.makeCurrent()
        try copyStream.wait(m.event)
    }

    /// Bytes per host-to-device copy of a slot write: a long copy would hold the copy engine while the compute
    /// stream's small uploads (layout tables) queue behind it.
    static let slotCopyChunkBytes = 1 << 20

    /// Queues one slot's W13 and W2 host-to-device copies on the copy stream (asynchronous from pinned memory), in
    /// chunks of `slotCopyChunkBytes`. A chunk is also cut where a page-locked range of the store begins or ends: the
    /// driver rejects one copy that spans page-locked and pageable memory (`CUDA_ERROR_INVALID_VALUE`), so the
    /// pageable edge pieces (under a page each) go as their own, driver-staged copies.
    public func enqueueSlotWrite(
        w13: UnsafeBufferPointer<Float>, w2: UnsafeBufferPointer<Float>, into weights: SlotWeights<CUDABuffer>,
        localSlot: Int
    ) throws {
        let (n13, n2) = try weights.checkSlotWrite(localSlot: localSlot, w13: w13.count, w2: w2.count)
        try gpu.context.makeCurrent()
        let api = gpu.context.api, s = copyStream.handle, chunk = Self.slotCopyChunkBytes
        for (dst, src, bytes, name) in [
            (weights.w13.address(localSlot * n13), UnsafeRawPointer(w13.baseAddress!), n13 * 4, "W13"),
            (weights.w2.address(localSlot * n2), UnsafeRawPointer(w2.baseAddress!), n2 * 4, "W2"),
        ] {
            for off in stride(from: 0, to: bytes, by: chunk) {
                let len = min(chunk, bytes - off)
                for piece in pinned.pieces(start: Int(bitPattern: src) + off, count: len) {
                    let at = piece.lowerBound - Int(bitPattern: src)
                    try api.check(
                        api.cuMemcpyHtoDAsync(dst + UInt64(at), src + at, piece.count, s),
                        "cuMemcpyHtoDAsync(slot \(localSlot) \(name), \(piece.count) of \(bytes) bytes at \(at))")
                }
            }
        }
    }

    /// Records a "copied" event on the copy stream and waits for it on the host (the migration thread), so the
    /// copies have landed when it returns; the event also lets the compute stream order itself after them. The wait
    /// sleeps (blocking sync) rather than spinning a core the rank threads and the host's other work need.
    public func finishSlotWrites() throws -> AnyObject? {
        try gpu.context.makeCurrent()
        let e = try CUDAEvent(context: gpu.context, timing: false, blockingSync: true)
        try e.record(on: copyStream)
        try e.synchronize()
        return StreamMarker(e)
    }

    /// The compute stream waits, on the device, for the layer's "copied" event.
    public func orderAfterSlotWrites(_ copied: AnyObject?) throws {
        guard let m = copied as? StreamMarker else { return }
        try gpu.context.makeCurrent()
        try gpu.stream.wait(m.event)
    }

    /// Page-locks the whole pages inside `region` with `cuMemHostRegister` (portable), so slot copies from them are
    /// asynchronous DMA. Only whole pages: a neighbouring allocation may share the edge pages (registering a page
    /// twice fails), and a copy touching an edge page is then staged by the driver — slower, still correct. False
    /// when the driver refuses or the region holds no whole page.
    public func pinHostMemory(_ region: UnsafeRawBufferPointer) -> Bool {
        guard let (base, bytes) = Self.wholePages(region), (try? gpu.context.makeCurrent()) != nil else { return false }
        let api = gpu.context.api
        guard api.cuMemHostRegister(base, bytes, CUAttribute.hostRegisterPortable) == 0 else { return false }
        pinned.insert(Int(bitPattern: base)..<(Int(bitPattern: base) + bytes))
        return true
    }

    /// Undoes `pinHostMemory`.
    public func unpinHostMemory(_ region: UnsafeRawBufferPointer) {
        guard let (base, bytes) = Self.wholePages(region), (try? gpu.context.makeCurrent()) != nil else { return }
        _ = gpu.context.api.cuMemHostUnregister(base)
        pinned.remove(Int(bitPattern: base)..<(Int(bitPattern: base) + bytes))
    }

    /// The page-aligned start and byte count of the whole 4 KiB pages inside `region`, or nil when there are none.
    static func wholePages(_ region: UnsafeRawBufferPointer) -> (UnsafeMutableRawPointer, Int)? {
        guard let p = region.baseAddress else { return nil }
        let page = 4096, start = (Int(bitPattern: p) + page - 1) / page * page
        let end = (Int(bitPattern: p) + region.count) / page * page
        guard end > start, let base = UnsafeMutableRawPointer(bitPattern: start) else { return nil }
        return (base, end - start)
    }

    /// Uploads `placement`'s slot-mapping tables now (after the forward of a layer switching to it), so its first
    /// forward finds them in the cache instead of allocating while copies are in flight.
    public func preparePlacement(_ placement: Placement) throws {
        try gpu.context.makeCurrent()
        _ = try slotTables(placement)
    }

    // MARK: Scratch reused across forwards

    /// A float32 device array of at least `count` elements, kept for the next call with the same `name`. Reused,
    /// not reallocated per forward: `cuMemFree` synchronizes the whole device, which would make the compute thread
    /// wait for migration copies in flight on the copy stream.
    func scratchFloats(_ name: String, _ count: Int) throws -> DeviceArray<Float> {
        if let a = scratch.floats[name], a.count >= count { return a }
        let a = try DeviceArray<Float>(gpu, count: max(count + count / 2, 1))
        scratch.floats[name] = a
        return a
    }

    /// An int32 device array of at least `count` elements (see `scratchFloats`).
    func scratchInts(_ name: String, _ count: Int) throws -> DeviceArray<Int32> {
        if let a = scratch.ints[name], a.count >= count { return a }
        let a = try DeviceArray<Int32>(gpu, count: max(count + count / 2, 1))
        scratch.ints[name] = a
        return a
    }

    /// The slot-mapping tables of `placement`, uploaded once and kept (the per-batch parts are refilled by the
    /// caller). At most `KernelScratch.maxTables` placements are kept; beyond that the cache starts over.
    func slotTables(_ placement: Placement) throws -> SlotTables {
        if let t = scratch.tables[placement] { return t }
        if scratch.tables.count >= KernelScratch.maxTables { scratch.tables = [:] }
        let t = try SlotTables(gpu: gpu, placement: placement)
        scratch.tables[placement] = t
        return t
    }
}

/// Device scratch of one rank's kernels, touched only by the rank's thread.
final class KernelScratch {
    /// Placements whose slot tables are kept (a few KB each); starting over frees them, which synchronizes the
    /// device, so it should be rare: 1024 covers 16 re-plans of a 61-layer model.
    static let maxTables = 1024
    var floats: [String: DeviceArray<Float>] = [:]
    var ints: [String: DeviceArray<Int32>] = [:]
    var tables: [Placement: SlotTables] = [:]
}

/// The host address ranges this rank page-locked, so a copy can be cut at their edges. Written when the engine pins
/// or unpins its store, read by the migration thread.
final class PinnedRanges: @unchecked Sendable {
    private let lock = NSLock()
    private var ranges: [Range<Int>] = []

    func insert(_ r: Range<Int>) {
        lock.lock()
        ranges.append(r)
        lock.unlock()
    }

    func remove(_ r: Range<Int>) {
        lock.lock()
        ranges.removeAll { $0 == r }
        lock.unlock()
    }

    /// `start ..< start + count` cut at the edges of every page-locked range it overlaps, in address order; each
    /// piece is either wholly page-locked or wholly pageable.
    func pieces(start: Int, count: Int) -> [Range<Int>] {
        let end = start + count
        var cuts: [Int] = [start, end]
        lock.lock()
        for r in ranges where r.lowerBound < end && r.upperBound > start {
            if r.lowerBound > start { cuts.append(r.lowerBound) }
            if r.upperBound < end { cuts.append(r.upperBound) }
        }
        lock.unlock()
        cuts.sort()
        var out: [Range<Int>] = []
        for i in 1..<cuts.count where cuts[i] > cuts[i - 1] { out.append(cuts[i - 1]..<cuts[i]) }
        return out
    }
}
