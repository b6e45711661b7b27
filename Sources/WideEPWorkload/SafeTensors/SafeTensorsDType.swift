/// Element types of the safetensors format, named as in the file header (`"F32"`, `"BF16"`, `"F8_E4M3"`, …).
public enum SafeTensorsDType: String, CaseIterable, Sendable, Codable {
    /// Booleans, one byte each (0 or 1).
    case bool = "BOOL"
    /// Unsigned 8-bit integers.
    case u8 = "U8"
    /// Signed 8-bit integers.
    case i8 = "I8"
    /// Unsigned 16-bit integers.
    case u16 = "U16"
    /// Signed 16-bit integers.
    case i16 = "I16"
    /// Unsigned 32-bit integers.
    case u32 = "U32"
    /// Signed 32-bit integers.
    case i32 = "I32"
    /// Unsigned 64-bit integers.
    case u64 = "U64"
    /// Signed 64-bit integers.
    case i64 = "I64"
    /// IEEE 754 half precision.
    case f16 = "F16"
    /// bfloat16: the upper 16 bits of an IEEE float.
    case bf16 = "BF16"
    /// IEEE 754 single precision.
    case f32 = "F32"
    /// IEEE 754 double precision.
    case f64 = "F64"
    /// OCP FP8 E4M3 ("fn" variant: bias 7, no infinities, 0x7F / 0xFF are NaN, max 448), as in DeepSeek-V3 weights.
    case f8E4M3 = "F8_E4M3"
    /// OCP FP8 E5M2: bias 15, the upper byte of an IEEE half.
    case f8E5M2 = "F8_E5M2"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E4M3, .f8E5M2: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        }
    }

    /// Whether the type holds integers (or booleans).
    public var isInteger: Bool {
        switch self {
        case .bool, .u8, .i8, .u16, .i16, .u32, .i32, .u64, .i64: return true
        case .f16, .bf16, .f32, .f64, .f8E4M3, .f8E5M2: return false
        }
    }

    /// Reads element `index` of little-endian `bytes` as a Double (exact for every type except 64-bit integers
    /// beyond 2^53).
    @inline(__always)
    func double(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> Double {
        let o = index &* byteSize
        switch self {
        case .bool: return bytes[o] != 0 ? 1 : 0
        case .u8: return Double(bytes[o])
        case .i8: return Double(Int8(bitPattern: bytes[o]))
        case .u16: return Double(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
        case .i16: return Double(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: Int16.self)))
        case .u32: return Double(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
        case .i32: return Double(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: Int32.self)))
        case .u64: return Double(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
        case .i64: return Double(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: Int64.self)))
        case .f16:
            return Double(FloatBits.halfToFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
        case .bf16:
            return Double(FloatBits.bf16ToFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
        case .f32:
            return Double(Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self))))
        case .f64:
            return Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
        case .f8E4M3: return Double(FloatBits.e4m3ToFloat(bytes[o]))
        case .f8E5M2: return Double(FloatBits.halfToFloat(UInt16(bytes[o]) << 8))
        }
    }

    /// Writes `value` as element `index` of `bytes`, little-endian; integers are rounded to nearest and clamped to the
    /// type's range, floats are rounded to nearest even.
    @inline(__always)
    func store(_ value: Double, _ bytes: UnsafeMutableRawBufferPointer, _ index: Int) {
        let o = index &* byteSize
        func clamp<T: FixedWidthInteger>(_: T.Type) -> T {
            if value.isNaN { return 0 }
            let r = value.rounded()
            if r <= Double(T.min) { return T.min }
            if r >= Double(T.max) { return T.max }
            return T(r)
        }
        switch self {
        case .bool: bytes[o] = value != 0 && !value.isNaN ? 1 : 0
        case .u8: bytes[o] = clamp(UInt8.self)
        case .i8: bytes[o] = UInt8(bitPattern: clamp(Int8.self))
        case .u16: bytes.storeBytes(of: clamp(UInt16.self).littleEndian, toByteOffset: o, as: UInt16.self)
        case .i16: bytes.storeBytes(of: clamp(Int16.self).littleEndian, toByteOffset: o, as: Int16.self)
        case .u32: bytes.storeBytes(of: clamp(UInt32.self).littleEndian, toByteOffset: o, as: UInt32.self)
        case .i32: bytes.storeBytes(of: clamp(Int32.self).littleEndian, toByteOffset: o, as: Int32.self)
        case .u64: bytes.storeBytes(of: clamp(UInt64.self).littleEndian, toByteOffset: o, as: UInt64.self)
        case .i64: bytes.storeBytes(of: clamp(Int64.self).littleEndian, toByteOffset: o, as: Int64.self)
        case .f16: bytes.storeBytes(of: FloatBits.floatToHalf(Float(value)).littleEndian, toByteOffset: o, as: UInt16.self)
        case .bf16: bytes.storeBytes(of: FloatBits.floatToBF16(Float(value)).littleEndian, toByteOffset: o, as: UInt16.self)
        case .f32: bytes.storeBytes(of: Float(value).bitPattern.littleEndian, toByteOffset: o, as: UInt32.self)
        case .f64: bytes.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: o, as: UInt64.self)
        case .f8E4M3: bytes[o] = FloatBits.floatToE4M3(Float(value))
        case .f8E5M2: bytes[o] = FloatBits.floatToE5M2(Float(value))
        }
    }
}
