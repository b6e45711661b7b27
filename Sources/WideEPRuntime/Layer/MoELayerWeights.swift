import WideEPCore

/// All weights of one MoE layer in float32, in the logical (expert-indexed) layout.
///
/// This is the host-side "expert store" that slot buffers are filled from, and what checkpoint loaders produce.
/// Shapes follow PyTorch's `nn.Linear.weight` ([out, in], row-major).
public struct MoELayerWeights: Sendable {
    /// Shape of the layer.
    public var config: MoEConfig
    /// Router weight, [E, H].
    public var routerWeight: [Float]
    /// Selection-only correction bias (`e_score_correction_bias`), [E], when `config.hasCorrectionBias`.
    public var correctionBias: [Float]?
    /// Gate and up projections of every routed expert, [E, 2I, H]: rows 0..<I are W1 (gate), rows I..<2I are W3 (up).
    public var w13: [Float]
    /// Down projections of every routed expert, [E, H, I].
    public var w2: [Float]
    /// Shared expert gate+up, [2·Is, H] with Is = numShared × sharedIntermediateSize; nil when numShared == 0.
    public var sharedW13: [Float]?
    /// Shared expert down projection, [H, Is]; nil when numShared == 0.
    public var sharedW2: [Float]?
    /// Qwen2-MoE `shared_expert_gate` weight, [H]: the shared output is scaled by sigmoid(x · gate); nil otherwise.
    public var sharedGate: [Float]?

    public init(
        config: MoEConfig, routerWeight: [Float], correctionBias: [Float]?, w13: [Float], w2: [Float],
        sharedW13: [Float]?, sharedW2: [Float]?, sharedGate: [Float]?
    ) {
        self.config = config
        self.routerWeight = routerWeight
        self.correctionBias = correctionBias
        self.w13 = w13
        self.w2 = w2
        self.sharedW13 = sharedW13
        self.sharedW2 = sharedW2
        self.sharedGate = sharedGate
    }

    /// Intermediate width of the shared expert block (numShared × sharedIntermediateSize).
    public var sharedIntermediate: Int { config.numShared * config.sharedIntermediateSize }

    /// Floats in one routed expert's W13 block (2I × H).
    public var w13PerExpert: Int { 2 * config.moeIntermediateSize * config.hiddenSize }
    /// Floats in one routed expert's W2 block (H × I).
    public var w2PerExpert: Int { config.hiddenSize * config.moeIntermediateSize }

    /// Checks every array's length against the config, naming the first mismatch.
    public func validate() throws {
        let c = config, h = c.hiddenSize, e = c.numExperts
        func check(_ name: String, _ n: Int?, _ want: Int) throws {
            guard let n else {
                throw ConfigError.invalid(field: name, value: "missing", expected: "\(want) values")
            }
            guard n == want else { throw ConfigError.invalid(field: name, value: "\(n) values", expected: "\(want)") }
        }
        try check("routerWeight", routerWeight.count, e * h)
        if c.hasCorrectionBias { try check("correctionBias", correctionBias?.count, e) }
        try check("w13", w13.count, e * w13PerExpert)
        try check("w2", w2.count, e * w2PerExpert)
        if c.numShared > 0 {
            try check("sharedW13", sharedW13?.count, 2 * sharedIntermediate * h)
            try check("sharedW2", sharedW2?.count, h * sharedIntermediate)
        }
        if c.sharedExpertGate { try check("sharedGate", sharedGate?.count, h) }
    }
}
