/// Host-side bfloat16: round-to-nearest-even from float32 (NaN stays NaN), the rule the kernels and PyTorch use.
public enum BF16 {
    /// The bf16 bits nearest to `f`.
    @inline(__always)
    public static func bits(_ f: Float) -> UInt16 {
        var u = f.bitPattern
        if (u & 0x7fff_ffff) > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
        u &+= 0x7fff &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: u >> 16)
    }

    /// The float32 value of bf16 `bits`.
    @inline(__always)
    public static func float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// `f` rounded to bf16 and back.
    @inline(__always)
    public static func round(_ f: Float) -> Float { float(bits(f)) }

    /// Converts a float array to bf16 bits.
    public static func bits(_ a: [Float]) -> [UInt16] { a.map { bits($0) } }

    /// Converts bf16 bits to floats.
    public static func floats(_ a: [UInt16]) -> [Float] { a.map { float($0) } }
}

/// CPU twin of `random.cu`: the same hash-uniform value for (seed, block, index) as the fill kernels and
/// `benchmarks/torch_moe_reference.py`.
public enum RandomFill {
    @inline(__always)
    static func fmix32(_ x: UInt32) -> UInt32 {
        var h = x
        h ^= h >> 16
        h = h &* 0x85eb_ca6b
        h ^= h >> 13
        h = h &* 0xc2b2_ae35
        h ^= h >> 16
        return h
    }

    /// Element `index` of block `block` for `seed`: uniform in [−scale/2, scale/2), float32.
    public static func value(seed: UInt32, block: Int, index: Int, scale: Float) -> Float {
        let key = fmix32(seed ^ (UInt32(truncatingIfNeeded: block) &* 0x9e37_79b9))
        let h = fmix32(UInt32(truncatingIfNeeded: index) ^ key)
        return (Float(h >> 8) * 5.9604644775390625e-08 - 0.5) * scale
    }
}

/// Relative error ‖a − b‖ / ‖b‖ in float64 (NaN if any element of `a` is not finite, so poison never passes).
public func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        if !a[i].isFinite { return .nan }
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return den == 0 ? (num == 0 ? 0 : .infinity) : (num / den).squareRoot()
}
