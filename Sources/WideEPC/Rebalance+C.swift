import WideEPCore

/// Allocates `log2phy` for `wideep_rebalance_experts`: given the context and X (the largest replica count), returns
/// a C-contiguous buffer of `num_layers × num_experts × X` int64 that stays valid until the call returns, or NULL.
public typealias WideEPLog2PhyAllocator = @convention(c) (UnsafeMutableRawPointer?, Int64) -> UnsafeMutablePointer<Int64>?

/// DeepSeek EPLB's `rebalance_experts` in one call: plans every layer (as `wideep_plan`) into `phy2log` and
/// `logcnt`, then asks `allocate_log2phy` once for a `[num_layers, num_experts, X]` buffer, X = the largest
/// replica count, and fills it (ascending physical ids, -1 padding). Layers are planned and filled on the
/// library's threads.
///
/// Shapes (row-major, C-contiguous): `loads [num_layers, num_experts]` float64; `current_phy2log` (nullable)
/// and `phy2log [num_layers, num_replicas]` int64; `logcnt [num_layers, num_experts]` int64 (required).
/// The allocator is called on the calling thread, at most once, and only after planning succeeded; a NULL from it
/// returns `WIDEEP_ERROR_NULL_POINTER`. Returns an `ABIStatus` raw value; see include/wideep.h.
@_cdecl("wideep_rebalance_experts")
public func wideep_rebalance_experts(
    _ loads: UnsafePointer<Double>?, _ numLayers: Int64, _ numExperts: Int64, _ policy: UnsafePointer<CChar>?,
    _ numReplicas: Int64, _ numGroups: Int64, _ numNodes: Int64, _ numGPUs: Int64, _ allowSameRank: Int32,
    _ currentPhy2Log: UnsafePointer<Int64>?, _ phy2log: UnsafeMutablePointer<Int64>?,
    _ logcnt: UnsafeMutablePointer<Int64>?, _ allocateLog2Phy: WideEPLog2PhyAllocator?,
    _ context: UnsafeMutableRawPointer?
) -> Int32 {
    withABIStatus("wideep_rebalance_experts") {
        let call = try PlanCall(
            loads: loads, phy2log: phy2log, numLayers: numLayers, numExperts: numExperts, policy: policy,
            numReplicas: numReplicas, numGroups: numGroups, numNodes: numNodes, numGPUs: numGPUs,
            allowSameRank: allowSameRank, currentPhy2Log: currentPhy2Log)
        let counts = try ABIArguments.required(logcnt, "logcnt")
        let allocate = try ABIArguments.required(allocateLog2Phy, "allocate_log2phy")
        let layers = call.layers, experts = call.experts
        try call.plan(phy2log: call.phy2log, logcnt: counts) { width in
            _ = try ABIArguments.product(try ABIArguments.product(layers, experts, "log2phy"), width, "log2phy")
            guard let out = allocate(context, Int64(width)) else {
                throw ABIError.null("the log2phy buffer from allocate_log2phy (width \(width))")
            }
            return out
        }
    }
}
