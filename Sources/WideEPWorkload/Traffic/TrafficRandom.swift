import Foundation
import WideEPCore

/// Deterministic PRNG for traces (xoshiro256**, seeded through SplitMix64): same seed, same trace, on every platform.
struct TrafficRandom: RandomNumberGenerator {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        s0 = seeder.next(); s1 = seeder.next(); s2 = seeder.next(); s3 = seeder.next()
    }

    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal (Box–Muller; one of the pair is used, which keeps the stream simple to reason about).
    mutating func normal() -> Double {
        let u1 = max(uniform(), 0x1p-60)
        let u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Binomial(n, p): exact inversion for small means, a rounded normal approximation (clamped to 0...n) above.
    mutating func binomial(_ n: Int, _ p: Double) -> Int {
        if n <= 0 || p <= 0 { return 0 }
        if p >= 1 { return n }
        let mean = Double(n) * p
        if mean < 30 {
            // Count successes by jumping over failures with geometric gaps.
            let logq = Foundation.log1p(-p)
            var k = 0, i = 0
            while true {
                let gap = Int(Foundation.log(max(uniform(), 0x1p-60)) / logq)
                i += gap + 1
                if i > n { return k }
                k += 1
            }
        }
        let x = (mean + (mean * (1 - p)).squareRoot() * normal()).rounded()
        return Int(min(Double(n), max(0, x)))
    }
}
