import Testing
import WideEPTestSupport
@testable import WideEPWorkload

@Suite struct FloatBitsTests {
    /// Random floats spanning the half range, subnormals and overflow included.
    static func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let e = Int.random(in: -30...18, using: &rng)
            let m = Float.random(in: 1..<2, using: &rng)
            let x = Float(sign: Bool.random(using: &rng) ? .minus : .plus, exponent: e, significand: m)
            return x
        }
    }

    #if !(os(macOS) && arch(x86_64))
    @Test func halfConversionMatchesFloat16() {
        for x in Self.randomFloats(20_000, seed: 1) + [0, -0, 65504, 65519.99, 65520, .infinity, 6.0e-8, 2.98e-8] {
            let ours = FloatBits.floatToHalf(x)
            #expect(ours == Float16(x).bitPattern, "float \(x)")
            #expect(FloatBits.halfToFloat(ours) == Float(Float16(bitPattern: ours)), "half bits \(ours)")
        }
        for bits in UInt16.min...UInt16.max where !Float16(bitPattern: bits).isNaN {
            #expect(FloatBits.halfToFloat(bits) == Float(Float16(bitPattern: bits)))
        }
    }
    #endif

    @Test func bf16RoundsToNearestEven() {
        for x in Self.randomFloats(20_000, seed: 2) {
            let b = FloatBits.floatToBF16(x)
            let y = FloatBits.bf16ToFloat(b)
            // The neighbours one bf16 step away must be no closer, ties going to the even pattern.
            let up = FloatBits.bf16ToFloat(b &+ 1), down = FloatBits.bf16ToFloat(b &- 1)
            let d = abs(Double(y) - Double(x))
            #expect(d <= abs(Double(up) - Double(x)) && d <= abs(Double(down) - Double(x)), "x \(x)")
        }
        #expect(FloatBits.floatToBF16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie → even
        #expect(FloatBits.floatToBF16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(FloatBits.bf16ToFloat(FloatBits.floatToBF16(.nan)).isNaN)
    }

    @Test func e4m3DecodesEveryCodeAndEncodesItBack() {
        for code in 0...255 {
            let v = FloatBits.e4m3ToFloat(UInt8(code))
            if code & 0x7F == 0x7F {
                #expect(v.isNaN)
                continue
            }
            // Independent decode: sign × 2^(e−7) × (1 + m/8), subnormal m × 2^−9.
            let e = (code >> 3) & 15, m = code & 7
            let mag = e == 0 ? Double(m) / 512 : (1 + Double(m) / 8) * pow2(e - 7)
            #expect(Double(v) == (code & 0x80 != 0 ? -mag : mag), "code \(code)")
            if code != 0x80 { #expect(FloatBits.floatToE4M3(v) == UInt8(code), "code \(code)") }
        }
        #expect(FloatBits.e4m3ToFloat(0x7E) == 448)
        #expect(FloatBits.floatToE4M3(1000) == 0x7E)
        #expect(FloatBits.floatToE4M3(-1000) == 0xFE)
        #expect(FloatBits.floatToE4M3(17) == FloatBits.floatToE4M3(16))  // tie → even mantissa
    }

    @Test func e5m2MatchesTheUpperByteOfHalf() {
        for code in 0...255 where code & 0x7F <= 0x7C {
            let v = FloatBits.halfToFloat(UInt16(code) << 8)
            #expect(FloatBits.floatToE5M2(v) == UInt8(code), "code \(code)")
        }
        #expect(FloatBits.floatToE5M2(70_000) == 0x7C)
    }

    private func pow2(_ e: Int) -> Double { e >= 0 ? Double(1 << e) : 1 / Double(1 << -e) }
}
