import WideEPRuntime

/// The CPU backend's buffer: 64-byte aligned host memory, freed when the last reference goes away.
public final class HostBuffer: DeviceBuffer, @unchecked Sendable {
    /// Size in bytes.
    public let byteCount: Int
    /// Start of the allocation; stable for the buffer's lifetime.
    public let raw: UnsafeMutableRawPointer

    /// Allocates `byteCount` bytes (at least 64), zero-filled.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        raw = .allocate(byteCount: max(byteCount, 64), alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 64))
    }

    deinit { raw.deallocate() }

    /// The memory as float32 elements.
    @inline(__always) public var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    /// The memory as int32 elements.
    @inline(__always) public var ints: UnsafeMutablePointer<Int32> { raw.assumingMemoryBound(to: Int32.self) }
}
