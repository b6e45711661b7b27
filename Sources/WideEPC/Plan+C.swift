import WideEPCore

/// Plans expert placements for every layer (DeepSeek EPLB's `rebalance_experts` contract).
///
/// Shapes (row-major, C-contiguous): `loads [num_layers, num_experts]` float64; `current_phy2log` (nullable)
/// and `phy2log [num_layers, num_replicas]` int64; `log2phy [num_layers, num_experts, max_replicas]` int64,
/// ascending physical ids padded with -1 (nullable); `logcnt [num_layers, num_experts]` int64 (nullable).
/// Returns an `ABIStatus` raw value; see include/wideep.h.
@_cdecl("wideep_plan")
public func wideep_plan(
    _ loads: UnsafePointer<Double>?, _ numLayers: Int64, _ numExperts: Int64, _ policy: UnsafePointer<CChar>?,
    _ numReplicas: Int64, _ numGroups: Int64, _ numNodes: Int64, _ numGPUs: Int64, _ allowSameRank: Int32,
    _ currentPhy2Log: UnsafePointer<Int64>?, _ maxReplicas: Int64,
    _ phy2log: UnsafeMutablePointer<Int64>?, _ log2phy: UnsafeMutablePointer<Int64>?,
    _ logcnt: UnsafeMutablePointer<Int64>?
) -> Int32 {
    withABIStatus("wideep_plan") {
        let call = try PlanCall(
            loads: loads, phy2log: phy2log, numLayers: numLayers, numExperts: numExperts, policy: policy,
            numReplicas: numReplicas, numGroups: numGroups, numNodes: numNodes, numGPUs: numGPUs,
            allowSameRank: allowSameRank, currentPhy2Log: currentPhy2Log)
        let phy2logOut = call.phy2log
        let layers = call.layers, experts = call.experts, slots = call.request.numSlots
        guard let log2phy else {
            // No capacity to check: plan straight into the caller's rows.
            try call.plan(phy2log: phy2logOut, logcnt: logcnt)
            return
        }
        guard maxReplicas >= 1 else {
            throw ABIError.invalid("max_replicas must be >= 1 when log2phy is given, got \(maxReplicas)")
        }
        _ = try ABIArguments.product(try ABIArguments.product(layers, experts, "log2phy"),
                                     Int(min(maxReplicas, ABIArguments.maxDimension)), "log2phy")
        // log2phy must stay untouched when max_replicas is too small, so plan into scratch rows first.
        let table = UnsafeMutablePointer<Int64>.allocate(capacity: layers * slots)
        let counts = UnsafeMutablePointer<Int64>.allocate(capacity: layers * experts)
        defer {
            table.deallocate()
            counts.deallocate()
        }
        try call.plan(phy2log: table, logcnt: counts)
        var widest: Int64 = 0
        for i in 0..<(layers * experts) where counts[i] > widest { widest = counts[i] }
        guard widest <= maxReplicas else {
            throw ABIError.capacity(
                "an expert has \(widest) replicas but max_replicas is \(maxReplicas); "
                    + "pass max_replicas >= \(widest) (num_replicas - num_experts + 1 always suffices)")
        }
        phy2logOut.update(from: table, count: layers * slots)
        logcnt?.update(from: counts, count: layers * experts)
        PlanOutput.writeLog2Phy(
            phy2log: table, layers: layers, experts: experts, slots: slots, maxReplicas: Int(maxReplicas),
            log2phy: log2phy)
    }
}

/// The physical experts of each logical expert, from a placement table (DeepSeek's `log2phy`).
///
/// Shapes: `phy2log [num_layers, num_replicas]` int64 (ids in 0..<num_experts); `log2phy` out
/// `[num_layers, num_experts, max_replicas]` int64: each expert's physical ids in ascending order, padded with -1.
/// An expert with more than `max_replicas` replicas returns `WIDEEP_ERROR_CAPACITY` and nothing is written.
@_cdecl("wideep_log2phy")
public func wideep_log2phy(
    _ phy2log: UnsafePointer<Int64>?, _ numLayers: Int64, _ numExperts: Int64, _ numReplicas: Int64,
    _ maxReplicas: Int64, _ log2phy: UnsafeMutablePointer<Int64>?
) -> Int32 {
    withABIStatus("wideep_log2phy") {
        let table = try ABIArguments.required(phy2log, "phy2log")
        let out = try ABIArguments.required(log2phy, "log2phy")
        let layers = try ABIArguments.dimension(numLayers, "num_layers")
        let experts = try ABIArguments.dimension(numExperts, "num_experts")
        let slots = try ABIArguments.dimension(numReplicas, "num_replicas")
        let width = try ABIArguments.dimension(maxReplicas, "max_replicas")
        _ = try ABIArguments.product(layers, slots, "phy2log")
        _ = try ABIArguments.product(try ABIArguments.product(layers, experts, "log2phy"), width, "log2phy")
        var widest = 0
        try withUnsafeTemporaryAllocation(of: Int32.self, capacity: experts) { countBuffer in
            let count = countBuffer.baseAddress!
            for l in 0..<layers {
                for e in 0..<experts { count[e] = 0 }
                let row = table + l * slots
                for s in 0..<slots {
                    let e = row[s]
                    guard e >= 0 && e < Int64(experts) else {
                        throw ABIError.invalid(
                            "phy2log[\(l)][\(s)] = \(e) is not a logical expert id; valid ids are 0..<\(experts)")
                    }
                    count[Int(e)] &+= 1
                }
                for e in 0..<experts where Int(count[e]) > widest { widest = Int(count[e]) }
            }
        }
        guard widest <= width else {
            throw ABIError.capacity(
                "an expert has \(widest) replicas but max_replicas is \(width); pass max_replicas >= \(widest)")
        }
        PlanOutput.writeLog2Phy(
            phy2log: table, layers: layers, experts: experts, slots: slots, maxReplicas: width, log2phy: out)
    }
}

/// Writes planner results into the caller's DeepSeek-layout buffers.
enum PlanOutput {
    /// Fills `log2phy [layers, experts, maxReplicas]` from `phy2log [layers, slots]`: ascending slots, -1 padding.
    /// The ids must be valid and no expert may have more than `maxReplicas` slots (callers check).
    static func writeLog2Phy(
        phy2log: UnsafePointer<Int64>, layers: Int, experts: Int, slots: Int, maxReplicas: Int,
        log2phy: UnsafeMutablePointer<Int64>
    ) {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: experts) { fillBuffer in
            let fill = fillBuffer.baseAddress!
            for l in 0..<layers {
                let out = log2phy + l * experts * maxReplicas
                out.update(repeating: -1, count: experts * maxReplicas)
                for e in 0..<experts { fill[e] = e &* maxReplicas }
                let row = phy2log + l * slots
                for s in 0..<slots {
                    let e = Int(row[s])
                    out[fill[e]] = Int64(s)
                    fill[e] &+= 1
                }
            }
        }
    }
}
