/// Bit-exact conversions between Float and the narrow float formats of safetensors (F16, BF16, FP8).
///
/// Encoders round to nearest even. FP8 E4M3 saturates to ±448 (it has no infinity); FP8 E5M2 and F16 overflow to
/// infinity, as IEEE and PyTorch do.
public enum FloatBits {
    /// IEEE half bits → Float (exact).
    @inline(__always)
    public static func halfToFloat(_ h: UInt16) -> Float {
        let sign: UInt32 = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1F
        let mant = UInt32(h) & 0x3FF
        if exp == 0 {
            // Subnormal or zero: mant × 2^-24.
            let v = Float(mant) * (1.0 / 16_777_216.0)
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }

    /// Float → IEEE half bits, round to nearest even; overflow gives infinity, NaN stays NaN.
    @inline(__always)
    public static func floatToHalf(_ f: Float) -> UInt16 {
        let x = f.bitPattern
        let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
        let a = x & 0x7FFF_FFFF
        if a >= 0x7F80_0000 { return sign | 0x7C00 | (a > 0x7F80_0000 ? 0x200 : 0) }
        if a >= 0x477F_F000 { return sign | 0x7C00 }  // ≥ 65520 rounds to infinity
        if a < 0x3880_0000 {
            // Below 2^-14: a half subnormal is round(|f| × 2^24); the scaling by a power of two is exact.
            let q = (Float(bitPattern: a) * 16_777_216.0).rounded(.toNearestOrEven)
            return sign | UInt16(q)
        }
        var h = ((a >> 23) &- 112) << 10 | ((a >> 13) & 0x3FF)
        let rest = a & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) { h &+= 1 }
        return sign | UInt16(truncatingIfNeeded: h)
    }

    /// bfloat16 bits → Float (exact).
    @inline(__always)
    public static func bf16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Float → bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
    @inline(__always)
    public static func floatToBF16(_ f: Float) -> UInt16 {
        let x = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: x >> 16) | 0x40 }
        let rounded = x &+ 0x7FFF &+ ((x >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// FP8 E4M3 (fn) bits → Float, from a 256-entry table.
    @inline(__always)
    public static func e4m3ToFloat(_ b: UInt8) -> Float { e4m3Table[Int(b)] }

    /// The 256 E4M3 values: bias 7, subnormals m × 2^-9, 0x7F and 0xFF are NaN.
    static let e4m3Table: [Float] = (0..<256).map { code in
        let sign: Float = code & 0x80 != 0 ? -1 : 1
        let e = (code >> 3) & 0xF
        let m = code & 7
        if e == 15 && m == 7 { return .nan }
        if e == 0 { return sign * Float(m) / 512 }
        return sign * (1 + Float(m) / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
    }

    /// Float → FP8 E4M3 (fn) bits, round to nearest even, saturating at ±448.
    public static func floatToE4M3(_ f: Float) -> UInt8 {
        encodeMinifloat(f, mantissaBits: 3, bias: 7, maxCode: 0x7E, overflowCode: 0x7E, nanCode: 0x7F)
    }

    /// Float → FP8 E5M2 bits, round to nearest even; values past the largest finite (57344) become infinity.
    public static func floatToE5M2(_ f: Float) -> UInt8 {
        encodeMinifloat(f, mantissaBits: 2, bias: 15, maxCode: 0x7B, overflowCode: 0x7C, nanCode: 0x7E)
    }

    /// Encodes a 1-sign / e / m minifloat. `maxCode` is the largest finite code (no sign bit); larger results use
    /// `overflowCode`.
    static func encodeMinifloat(
        _ f: Float, mantissaBits: Int, bias: Int, maxCode: UInt8, overflowCode: UInt8, nanCode: UInt8
    ) -> UInt8 {
        let sign: UInt8 = f.sign == .minus ? 0x80 : 0
        if f.isNaN { return nanCode }
        let a = abs(f)
        if a.isInfinite { return sign | overflowCode }
        let steps = Float(1 << mantissaBits)
        var code: Int
        if a < Float(sign: .plus, exponent: 1 - bias, significand: 1) {
            // Subnormal range: multiples of 2^(1 - bias - m); a result of 2^m is the smallest normal, encoded right.
            code = Int((a * Float(sign: .plus, exponent: bias - 1 + mantissaBits, significand: 1))
                .rounded(.toNearestOrEven))
        } else {
            var e = Int(a.exponent)
            var q = Int(((a.significand - 1) * steps).rounded(.toNearestOrEven))
            if q == 1 << mantissaBits { e += 1; q = 0 }
            code = (e + bias) << mantissaBits | q
        }
        if code > Int(maxCode) { return sign | overflowCode }
        return sign | UInt8(code)
    }
}
