import WideEPCore

/// Splits one batch's per-expert token counts over the replicas of one layer's placement (ReplicaSplit).
///
/// Shapes: `counts [num_experts]` int64 (>= 0), `phy2log [num_replicas]` int64 (every expert present; replicas of
/// one expert may share a GPU), `quotas [num_replicas]` int64 output: the tokens each physical slot receives.
/// The quotas of an expert's replicas sum to its count. `policy` is "balanced" (min–max rank load) or "even"
/// (round-robin); NULL means "balanced".
@_cdecl("wideep_split")
public func wideep_split(
    _ counts: UnsafePointer<Int64>?, _ numExperts: Int64, _ phy2log: UnsafePointer<Int64>?, _ numReplicas: Int64,
    _ numGPUs: Int64, _ policy: UnsafePointer<CChar>?, _ quotas: UnsafeMutablePointer<Int64>?
) -> Int32 {
    withABIStatus("wideep_split") {
        let countsPointer = try ABIArguments.required(counts, "counts")
        let phy2logPointer = try ABIArguments.required(phy2log, "phy2log")
        let out = try ABIArguments.required(quotas, "quotas")
        let experts = try ABIArguments.dimension(numExperts, "num_experts")
        let slots = try ABIArguments.dimension(numReplicas, "num_replicas")
        let ranks = try ABIArguments.dimension(numGPUs, "num_gpus")
        let splitPolicy = try SplitArguments.policy(ABIArguments.name(policy, default: "balanced"))
        guard slots % ranks == 0 else {
            throw ABIError.invalid("num_replicas \(slots) is not a multiple of num_gpus \(ranks)")
        }
        let placement = try ABIArguments.placement(
            UnsafeBufferPointer(start: phy2logPointer, count: slots), numExperts: experts, numRanks: ranks,
            allowSameRank: true, layer: nil, name: "phy2log")
        let expertCounts = try SplitArguments.counts(UnsafeBufferPointer(start: countsPointer, count: experts))
        let result = ReplicaSplit.quotas(expertCounts: expertCounts, placement: placement, policy: splitPolicy)
        guard result.count == slots else {
            throw ABIError(
                status: .internalError, description: "split returned \(result.count) quotas for \(slots) slots")
        }
        for s in 0..<slots { out[s] = Int64(result[s]) }
    }
}

/// Argument decoding shared by the split and imbalance entry points.
enum SplitArguments {
    /// Parses "balanced" or "even".
    static func policy(_ text: String) throws -> SplitPolicy {
        switch text {
        case "balanced": return .balanced
        case "even": return .even
        default: throw ABIError.invalid("unknown split policy \"\(text)\"; valid: balanced, even")
        }
    }

    /// Copies token counts into Ints, checking 0 ≤ count ≤ Int32.max (the ReplicaSplit's range).
    static func counts(_ row: UnsafeBufferPointer<Int64>, name: String = "counts") throws -> [Int] {
        var out = [Int](repeating: 0, count: row.count)
        for (e, c) in row.enumerated() {
            guard c >= 0 && c <= Int64(Int32.max) else {
                throw ABIError.invalid("\(name)[\(e)] = \(c); token counts must be in 0...\(Int32.max)")
            }
            out[e] = Int(c)
        }
        return out
    }
}
