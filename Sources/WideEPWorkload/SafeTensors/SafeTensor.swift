/// One tensor of a `SafeTensorsFile`: name, dtype, shape, and a view of its raw little-endian bytes in the mapping.
///
/// The tensor keeps the file mapped while it lives. Converters (`floats()`, `doubles()`, `int64s()`) copy into Swift
/// arrays; `withUnsafeBytes` gives the raw bytes without a copy (e.g. to upload FP8 weights as they are).
public struct SafeTensor: @unchecked Sendable {
    // The storage reference is immutable and read-only.

    /// Tensor name from the header.
    public let name: String
    /// Element type.
    public let dtype: SafeTensorsDType
    /// Dimensions, outermost first (row-major).
    public let shape: [Int]
    /// Byte offset of the first element within the file.
    let offset: Int
    /// The mapped file; set by `SafeTensorsFile` after parsing.
    var storage: MappedFile?

    init(name: String, dtype: SafeTensorsDType, shape: [Int], offset: Int, storage: MappedFile?) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.storage = storage
    }

    /// Number of elements (product of `shape`; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
    /// Number of bytes (`count × dtype.byteSize`).
    public var byteCount: Int { count * dtype.byteSize }

    /// Calls `body` with the raw little-endian bytes, [byteCount]. The pointer is valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        guard let storage else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try withExtendedLifetime(storage) { try body(storage.bytes(offset: offset, count: byteCount)) }
    }

    /// A copy of the raw bytes, [byteCount].
    public func bytes() -> [UInt8] { withUnsafeBytes { Array($0) } }

    /// Every element converted to Float, row-major, [count]. Works for every dtype, FP8 E4M3 included; 64-bit
    /// integers beyond 2^24 lose precision.
    public func floats() -> [Float] {
        let n = count
        return withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: n) { out, initialized in
                switch dtype {
                case .f32:
                    #if _endian(little)
                    // The mapping may place the tensor at any byte offset, so copy bytes rather than bind memory.
                    if n > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: n &* 4) }
                    #else
                    for i in 0..<n { out[i] = Float(dtype.double(raw, i)) }
                    #endif
                case .bf16:
                    for i in 0..<n {
                        out[i] = FloatBits.bf16ToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
                    }
                case .f16:
                    for i in 0..<n {
                        out[i] = FloatBits.halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
                    }
                case .f8E4M3:
                    FloatBits.e4m3Table.withUnsafeBufferPointer { table in
                        for i in 0..<n { out[i] = table[Int(raw[i])] }
                    }
                default:
                    for i in 0..<n { out[i] = Float(dtype.double(raw, i)) }
                }
                initialized = n
            }
        }
    }

    /// Every element converted to Double, row-major, [count] (exact except 64-bit integers beyond 2^53).
    public func doubles() -> [Double] {
        let n = count
        return withUnsafeBytes { raw in
            [Double](unsafeUninitializedCapacity: n) { out, initialized in
                for i in 0..<n { out[i] = dtype.double(raw, i) }
                initialized = n
            }
        }
    }

    /// Every element as Int64, row-major, [count]; exact for every integer dtype.
    ///
    /// - Throws: `SafeTensorsError.invalidTensor` for float dtypes.
    public func int64s() throws -> [Int64] {
        guard dtype.isInteger else {
            throw SafeTensorsError.invalidTensor(name: name, reason: "dtype \(dtype.rawValue) is not an integer type")
        }
        let n = count
        return withUnsafeBytes { raw in
            (0..<n).map { i -> Int64 in
                switch dtype {
                case .i64: return Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i &* 8, as: Int64.self))
                case .u64:
                    return Int64(truncatingIfNeeded: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)))
                default: return Int64(dtype.double(raw, i))
                }
            }
        }
    }
}
