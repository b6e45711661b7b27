import CUDADriver

/// Element types stored in device arrays: bf16 (as raw `UInt16` bits), float32 and int32.
public protocol DeviceElement {
    /// Bytes per element.
    static var stride: Int { get }
}
extension Float: DeviceElement { public static var stride: Int { 4 } }
extension Int32: DeviceElement { public static var stride: Int { 4 } }
extension UInt16: DeviceElement { public static var stride: Int { 2 } }
extension UInt64: DeviceElement { public static var stride: Int { 8 } }

/// A `cuMemAlloc` allocation of `count` elements, freed exactly once when the last reference goes away.
///
/// bf16 data is held as `DeviceArray<UInt16>` (raw bits, round-to-nearest-even from float32).
public final class DeviceArray<Element: DeviceElement>: @unchecked Sendable {
    let api: DriverAPI
    /// The device address.
    public let pointer: CUdeviceptr
    /// Elements in the allocation.
    public let count: Int
    /// Bytes in the allocation.
    public var byteCount: Int { count * Element.stride }

    /// Allocates `count` elements (at least one byte) with plain `cuMemAlloc` (never managed memory).
    public init(_ gpu: GPU, count: Int) throws {
        precondition(count >= 0)
        api = gpu.context.api
        self.count = count
        var p: CUdeviceptr = 0
        let bytes = max(count * Element.stride, 16)
        try api.check(api.cuMemAlloc(&p, bytes), "cuMemAlloc(\(bytes) bytes)")
        pointer = p
    }

    /// Allocates and uploads `host`.
    public convenience init(_ gpu: GPU, _ host: [Element]) throws {
        try self.init(gpu, count: host.count)
        try upload(host, gpu: gpu)
    }

    /// Copies `host` into the start of the array and waits for the copy.
    public func upload(_ host: [Element], gpu: GPU, offset: Int = 0) throws {
        precondition(offset + host.count <= count, "upload of \(host.count) elements past \(count)")
        if host.isEmpty { return }
        try host.withUnsafeBytes { raw in
            try api.check(
                api.cuMemcpyHtoDAsync(
                    pointer + UInt64(offset * Element.stride), raw.baseAddress, raw.count, gpu.stream.handle),
                "cuMemcpyHtoDAsync(\(raw.count) bytes)")
            try gpu.synchronize()
        }
    }

    /// Copies the first `n` elements (all by default) back to the host, waiting for the stream first.
    public func download(_ gpu: GPU, count n: Int? = nil) throws -> [Element] {
        let n = n ?? count
        precondition(n <= count)
        var out = [Element](unsafeUninitializedCapacity: n) { _, c in c = n }
        if n == 0 { return out }
        try out.withUnsafeMutableBytes { raw in
            try api.check(
                api.cuMemcpyDtoHAsync(raw.baseAddress, pointer, raw.count, gpu.stream.handle),
                "cuMemcpyDtoHAsync(\(raw.count) bytes)")
            try gpu.synchronize()
        }
        return out
    }

    /// Fills every element's bytes with a poison pattern (NaN for floats and bf16, −1 for ints) on the stream.
    public func poison(_ gpu: GPU) throws {
        let s = gpu.stream.handle
        switch Element.stride {
        case 2: try api.check(api.cuMemsetD16Async(pointer, 0x7FC1, count, s), "cuMemsetD16Async")
        case 4: try api.check(api.cuMemsetD32Async(pointer, 0x7FC0_0001, count, s), "cuMemsetD32Async")
        default: try api.check(api.cuMemsetD8Async(pointer, 0xFF, byteCount, s), "cuMemsetD8Async")
        }
    }

    /// Sets every byte to zero on the stream.
    public func zero(_ gpu: GPU) throws {
        try api.check(api.cuMemsetD8Async(pointer, 0, byteCount, gpu.stream.handle), "cuMemsetD8Async")
    }

    /// Address of element `i`.
    public func address(at i: Int) -> CUdeviceptr { pointer + UInt64(i * Element.stride) }

    deinit { _ = api.cuMemFree(pointer) }
}

/// Page-locked host memory from `cuMemHostAlloc`, freed exactly once; used for fast, async count read-backs.
public final class PinnedBuffer<Element: DeviceElement>: @unchecked Sendable {
    let api: DriverAPI
    /// The host address.
    public let pointer: UnsafeMutablePointer<Element>
    /// Elements in the buffer.
    public let count: Int

    public init(_ gpu: GPU, count: Int) throws {
        api = gpu.context.api
        self.count = count
        var p: UnsafeMutableRawPointer?
        let bytes = max(count * Element.stride, 16)
        try api.check(api.cuMemHostAlloc(&p, bytes, CUAttribute.hostAllocPortable), "cuMemHostAlloc(\(bytes) bytes)")
        pointer = p!.bindMemory(to: Element.self, capacity: max(count, 1))
    }

    /// The contents as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// Issues an async copy of the first `n` elements of `source` into this buffer on the GPU's stream.
    public func copyAsync(from source: DeviceArray<Element>, count n: Int, gpu: GPU) throws {
        precondition(n <= count && n <= source.count)
        try api.check(
            api.cuMemcpyDtoHAsync(UnsafeMutableRawPointer(pointer), source.pointer, n * Element.stride, gpu.stream.handle),
            "cuMemcpyDtoHAsync(pinned)")
    }

    /// Issues an async copy of the first `n` elements of this buffer to `dest` on the GPU's stream.
    public func copyAsync(to dest: DeviceArray<Element>, count n: Int, gpu: GPU) throws {
        precondition(n <= count && n <= dest.count)
        try api.check(
            api.cuMemcpyHtoDAsync(dest.pointer, UnsafeRawPointer(pointer), n * Element.stride, gpu.stream.handle),
            "cuMemcpyHtoDAsync(pinned)")
    }

    deinit { _ = api.cuMemFreeHost(UnsafeMutableRawPointer(pointer)) }
}
