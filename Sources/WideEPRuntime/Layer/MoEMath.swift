import Foundation
import WideEPCore

/// Small float kernels shared by the dense reference and the CPU backend, so that both compute router logits in the
/// same summation order (bit-identical logits keep top-K selection identical on near-ties).
public enum MoEMath {
    /// Dot product of `count` floats with 8 partial sums in a fixed order (lane-wise, then lanes 0…7 in order, then
    /// the scalar tail), deterministic on every platform.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i &+ 8 <= count {
            let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            let y = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            acc += x * y
            i &+= 8
        }
        var s: Float = 0
        for lane in 0..<8 { s += acc[lane] }
        while i < count {
            s += a[i] * b[i]
            i &+= 1
        }
        return s
    }

    /// Router logits of `tokens` rows: `logits[t, e] = dot(hidden[t], router[e]) + offset[e]`.
    ///
    /// - Parameters: hidden [tokens, H]; router [E, H]; offset [E] or nil; logits out [tokens, E].
    public static func routerLogits(
        hidden: UnsafePointer<Float>, tokens: Range<Int>, hiddenSize h: Int, router: UnsafePointer<Float>,
        numExperts e: Int, offset: UnsafePointer<Float>?, logits: UnsafeMutablePointer<Float>
    ) {
        for t in tokens {
            let x = hidden + t &* h
            let out = logits + t &* e
            for j in 0..<e {
                out[j] = dot(x, router + j &* h, count: h) + (offset?[j] ?? 0)
            }
        }
    }

    /// SiLU, `x · sigmoid(x)`.
    @inline(__always)
    public static func silu(_ x: Float) -> Float { x / (1 + Foundation.exp(-x)) }

    /// Logistic sigmoid.
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }

    /// Relative error `max|a − b| / max(max|b|, tiny)` over two equally long arrays (∞-norm).
    public static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count, "relativeError needs equal lengths")
        var diff = 0.0, norm = 0.0
        for i in 0..<a.count {
            diff = max(diff, Double(abs(a[i] - b[i])))
            norm = max(norm, Double(abs(b[i])))
        }
        if diff.isNaN || !diff.isFinite { return .infinity }
        return diff / max(norm, 1e-30)
    }
}
