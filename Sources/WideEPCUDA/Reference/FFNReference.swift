import WideEPCore
import WideEPRuntime

/// CPU twins of `swiglu.cu`, the cuBLAS expert GEMMs and `combine.cu`, and the dense float reference of the layer.
public enum FFNReference {
    /// Twin of `silu_mul`: y [rows, 2I] → h [rows, I] in float32 (the kernel rounds the result to bf16 once).
    public static func siluMul(y: [Float], rows: Int, intermediate: Int) -> [Float] {
        var h = [Float](repeating: 0, count: rows * intermediate)
        for r in 0..<rows {
            for i in 0..<intermediate {
                let g = y[r * 2 * intermediate + i], u = y[r * 2 * intermediate + intermediate + i]
                h[r * intermediate + i] = g / (1 + Float.exp(-g)) * u
            }
        }
        return h
    }

    /// Row-major `y[m, n] = x[m, k] · w[n, k]ᵀ` in float32 (float64 accumulation).
    public static func matmulXWt(_ x: ArraySlice<Float>, _ w: ArraySlice<Float>, m: Int, n: Int, k: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * n)
        x.withContiguousStorageIfAvailable { xp in
            w.withContiguousStorageIfAvailable { wp in
                for r in 0..<m {
                    for c in 0..<n {
                        var acc = 0.0
                        for i in 0..<k { acc += Double(xp[r * k + i]) * Double(wp[c * k + i]) }
                        y[r * n + c] = Float(acc)
                    }
                }
            }
        }
        return y
    }

    /// Twin of `combine`: `out[t] = shared[t] + Σ_k w[t,k] · ys[position[t,k]]`, float32.
    public static func combine(
        ys: [Float], position: [Int32], weights: [Float], shared: [Float]?, tokens: Int, topK: Int, hidden: Int
    ) -> [Float] {
        var out = shared ?? [Float](repeating: 0, count: tokens * hidden)
        for t in 0..<tokens {
            for k in 0..<topK {
                let p = Int(position[t * topK + k])
                if p < 0 { continue }
                let w = weights[t * topK + k]
                for i in 0..<hidden { out[t * hidden + i] += w * ys[p * hidden + i] }
            }
        }
        return out
    }

    /// One SwiGLU FFN on one row: `W2 · (silu(W1·x) ⊙ W3·x)` with W13 [2I, H] and W2 [H, I], float32 slices.
    static func expert(_ x: ArraySlice<Float>, w13: ArraySlice<Float>, w2: ArraySlice<Float>, hidden: Int, inter: Int)
        -> [Float]
    {
        let y = matmulXWt(x, w13, m: 1, n: 2 * inter, k: hidden)
        let h = siluMul(y: y, rows: 1, intermediate: inter)
        return matmulXWt(h[...], w2, m: 1, n: hidden, k: inter)
    }

    /// The dense single-rank reference of the layer (DESIGN.md §4) on `x` [T, H], routed from `logits` [T, E]:
    /// `Σ_k w_k · FFN_{e_k}(x) + shared(x)`, float32. Weights are the (bf16-rounded) logical expert weights.
    public static func denseLayer(x: [Float], logits: [Float], tokens: Int, weights: MoELayerWeights) -> [Float] {
        let c = weights.config, h = c.hiddenSize, inter = c.moeIntermediateSize, k = c.topK
        let routed = Router.route(logits: logits, tokens: tokens, bias: weights.correctionBias, config: c)
        var out = [Float](repeating: 0, count: tokens * h)
        let is_ = weights.sharedIntermediate
        for t in 0..<tokens {
            let xt = x[t * h..<(t + 1) * h]
            for j in 0..<k {
                let e = Int(routed.experts[t * k + j]), w = routed.weights[t * k + j]
                let y = expert(
                    xt, w13: weights.w13[e * 2 * inter * h..<(e + 1) * 2 * inter * h],
                    w2: weights.w2[e * h * inter..<(e + 1) * h * inter], hidden: h, inter: inter)
                for i in 0..<h { out[t * h + i] += w * y[i] }
            }
            if let s13 = weights.sharedW13, let s2 = weights.sharedW2, is_ > 0 {
                let y = expert(xt, w13: s13[...], w2: s2[...], hidden: h, inter: is_)
                for i in 0..<h { out[t * h + i] += y[i] }
            }
        }
        return out
    }
}
