/// FP8 e4m3 (the "fn" variant: bias 7, no infinities, NaN = 0x7F/0xFF, largest finite 448) and the per-128-channel
/// quantisation that the fp8 dispatch kernel applies; the host twin the GPU results are checked against.
public enum FP8E4M3 {
    /// Largest finite magnitude.
    public static let maxFinite: Float = 448
    /// Channels sharing one scale.
    public static let groupSize = 128
    /// Smallest amax used for a scale (all-zero groups stay finite), as in DeepEP.
    public static let minAmax: Float = 1e-4

    /// The value of an e4m3 code.
    public static func decode(_ code: UInt8) -> Float {
        let sign: Float = code & 0x80 != 0 ? -1 : 1
        let exp = Int((code >> 3) & 0x0F)
        let man = Float(code & 0x07)
        if exp == 15 && code & 0x07 == 7 { return .nan }
        if exp == 0 { return sign * man * 0x1p-9 }
        return sign * (1 + man / 8) * Float(sign: .plus, exponent: exp - 7, significand: 1)
    }

    /// Rounds `x` to the nearest e4m3 value, ties to even, saturating to ±448 (`cvt.rn.satfinite.e4m3x2.f32`).
    public static func encode(_ x: Float) -> UInt8 {
        if x.isNaN { return 0x7F }
        let signBit: UInt8 = x.sign == .minus ? 0x80 : 0
        let a = abs(x)
        if a >= maxFinite { return signBit | 0x7E }
        if a < 0x1p-6 {
            // Subnormals in units of 2⁻⁹; 8 units is the smallest normal, code 0x08, so the code is the count.
            let m = (a * 0x1p9).rounded(.toNearestOrEven)
            return signBit | UInt8(m)
        }
        var e = Int(a.exponent)
        var m = ((a / Float(sign: .plus, exponent: e, significand: 1) - 1) * 8).rounded(.toNearestOrEven)
        if m == 8 { e += 1; m = 0 }
        let code = UInt8(e + 7) << 3 | UInt8(m)
        return signBit | min(code, 0x7E)
    }

    /// Quantises `row` (length a multiple of 128) group by group: amax = max(|x|, 1e-4), codes = e4m3(x · 448/amax),
    /// stored scale = amax/448. Returns the codes [n] and scales [n/128].
    public static func quantize(_ row: [Float]) -> (codes: [UInt8], scales: [Float]) {
        precondition(row.count % groupSize == 0, "row length \(row.count) is not a multiple of \(groupSize)")
        var codes = [UInt8](repeating: 0, count: row.count)
        var scales = [Float](repeating: 0, count: row.count / groupSize)
        for g in 0..<scales.count {
            let lo = g * groupSize
            var amax = minAmax
            for i in lo..<(lo + groupSize) { amax = max(amax, abs(row[i])) }
            let scale = maxFinite / amax
            for i in lo..<(lo + groupSize) { codes[i] = encode(row[i] * scale) }
            scales[g] = amax / maxFinite
        }
        return (codes, scales)
    }

    /// Inverse of `quantize`: `decode(code) · scale` per group.
    public static func dequantize(codes: [UInt8], scales: [Float]) -> [Float] {
        codes.enumerated().map { i, c in decode(c) * scales[i / groupSize] }
    }
}

/// bfloat16 bit conversions used by the communication checks (round to nearest even, NaN kept quiet).
public enum BF16Bits {
    /// float32 → bf16 bits, round to nearest even.
    public static func from(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(b >> 16) | 0x40 }
        let rounded = b &+ 0x7FFF &+ ((b >> 16) & 1)
        return UInt16(rounded >> 16)
    }

    /// bf16 bits → float32 (exact).
    public static func toFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }
}
