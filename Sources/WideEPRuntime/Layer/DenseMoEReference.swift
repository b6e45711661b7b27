import WideEPCore

/// The single-rank MoE layer computed straight from the logical weights: the master invariant's right-hand side.
///
/// `out[t] = Σ_k w[t,k] · FFN_{e[t,k]}(x[t]) + g(x[t]) · SharedFFN(x[t])`, with routing by `Router.route` on logits
/// from `MoEMath.routerLogits`. No placement, no slots, no communication.
public enum DenseMoEReference {
    /// Runs the layer on `hidden` [tokens, H] and returns [tokens, H].
    ///
    /// - Parameter logitOffset: optional [E] added to every token's router logits (workload steering).
    public static func forward(
        weights: MoELayerWeights, hidden: [Float], tokens: Int, logitOffset: [Float]? = nil
    ) -> [Float] {
        let c = weights.config, h = c.hiddenSize, e = c.numExperts, k = c.topK, inter = c.moeIntermediateSize
        precondition(hidden.count == tokens * h, "hidden must be [tokens, H]")
        var logits = [Float](repeating: 0, count: tokens * e)
        hidden.withUnsafeBufferPointer { x in
            weights.routerWeight.withUnsafeBufferPointer { r in
                logits.withUnsafeMutableBufferPointer { l in
                    if let logitOffset {
                        logitOffset.withUnsafeBufferPointer { o in
                            MoEMath.routerLogits(hidden: x.baseAddress!, tokens: 0..<tokens, hiddenSize: h,
                                                 router: r.baseAddress!, numExperts: e, offset: o.baseAddress,
                                                 logits: l.baseAddress!)
                        }
                    } else {
                        MoEMath.routerLogits(hidden: x.baseAddress!, tokens: 0..<tokens, hiddenSize: h,
                                             router: r.baseAddress!, numExperts: e, offset: nil,
                                             logits: l.baseAddress!)
                    }
                }
            }
        }
        let routed = Router.route(logits: logits, tokens: tokens, bias: weights.correctionBias, config: c)
        var out = [Float](repeating: 0, count: tokens * h)
        var y = [Float](repeating: 0, count: h)
        hidden.withUnsafeBufferPointer { xb in
            for t in 0..<tokens {
                let x = xb.baseAddress! + t * h
                for j in 0..<k {
                    let ex = Int(routed.experts[t * k + j])
                    weights.w13.withUnsafeBufferPointer { w13 in
                        weights.w2.withUnsafeBufferPointer { w2 in
                            swiGLU(x: x, h: h, inter: inter, w13: w13.baseAddress! + ex * 2 * inter * h,
                                   w2: w2.baseAddress! + ex * h * inter, y: &y)
                        }
                    }
                    let w = routed.weights[t * k + j]
                    for i in 0..<h { out[t * h + i] += w * y[i] }
                }
                if c.numShared > 0, let s13 = weights.sharedW13, let s2 = weights.sharedW2 {
                    let si = weights.sharedIntermediate
                    s13.withUnsafeBufferPointer { a in
                        s2.withUnsafeBufferPointer { b in
                            swiGLU(x: x, h: h, inter: si, w13: a.baseAddress!, w2: b.baseAddress!, y: &y)
                        }
                    }
                    var g: Float = 1
                    if c.sharedExpertGate, let gate = weights.sharedGate {
                        g = gate.withUnsafeBufferPointer { MoEMath.sigmoid(MoEMath.dot(x, $0.baseAddress!, count: h)) }
                    }
                    for i in 0..<h { out[t * h + i] += g * y[i] }
                }
            }
        }
        return out
    }

    /// One SwiGLU expert on one row: `y = (silu(x·W1ᵀ) ⊙ x·W3ᵀ)·W2ᵀ`; w13 [2I, H], w2 [H, I].
    static func swiGLU(
        x: UnsafePointer<Float>, h: Int, inter: Int, w13: UnsafePointer<Float>, w2: UnsafePointer<Float>,
        y: inout [Float]
    ) {
        var act = [Float](repeating: 0, count: inter)
        for i in 0..<inter {
            let g = MoEMath.dot(x, w13 + i * h, count: h)
            let u = MoEMath.dot(x, w13 + (inter + i) * h, count: h)
            act[i] = MoEMath.silu(g) * u
        }
        act.withUnsafeBufferPointer { a in
            for o in 0..<h { y[o] = MoEMath.dot(a.baseAddress!, w2 + o * inter, count: inter) }
        }
    }
}
