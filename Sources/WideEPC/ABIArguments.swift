import WideEPCore

/// Checks on the raw sizes, pointers and values that arrive through the C ABI, done before anything reaches
/// WideEPCore (whose preconditions would otherwise stop the host process).
enum ABIArguments {
    /// Largest count accepted for any dimension; keeps ids in Int32 and products far from overflow.
    static let maxDimension: Int64 = 1 << 24

    /// Returns `value` as Int after checking `1 ≤ value ≤ maxDimension`.
    static func dimension(_ value: Int64, _ name: String) throws -> Int {
        guard value >= 1 && value <= maxDimension else {
            throw ABIError.invalid("\(name) must be in 1...\(maxDimension), got \(value)")
        }
        return Int(value)
    }

    /// `a × b` for element counts, rejecting products above 2^31 elements.
    static func product(_ a: Int, _ b: Int, _ what: String) throws -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow && p <= Int(Int32.max) else {
            throw ABIError.invalid("\(what) has \(a) × \(b) elements, more than the supported \(Int32.max)")
        }
        return p
    }

    /// Unwraps a required pointer.
    static func required<T>(_ pointer: T?, _ name: String) throws -> T {
        guard let pointer else { throw ABIError.null(name) }
        return pointer
    }

    /// Decodes a NUL-terminated policy name; NULL means `defaultName`.
    static func name(_ pointer: UnsafePointer<CChar>?, default defaultName: String) -> String {
        guard let pointer else { return defaultName }
        return String(cString: pointer)
    }

    /// Parses a planner policy name ("none", "greedy", "deepseek", "balanced").
    static func plannerPolicy(_ text: String) throws -> PlannerPolicy {
        guard let policy = PlannerPolicy(rawValue: text) else {
            let valid = PlannerPolicy.allCases.map(\.rawValue).joined(separator: ", ")
            throw ABIError.invalid("unknown policy \"\(text)\"; valid policies: \(valid)")
        }
        return policy
    }

    /// Copies `[layers, experts]` float64 loads into per-layer arrays, rejecting NaN, infinities and negatives.
    static func loads(_ pointer: UnsafePointer<Double>, layers: Int, experts: Int, name: String = "loads")
        throws -> [[Double]]
    {
        let flat = UnsafeBufferPointer(start: pointer, count: layers * experts)
        var out: [[Double]] = []
        out.reserveCapacity(layers)
        for l in 0..<layers {
            let row = Array(flat[(l * experts)..<((l + 1) * experts)])
            for (e, x) in row.enumerated() where !(x.isFinite && x >= 0) {
                throw ABIError.invalid("\(name)[\(l)][\(e)] = \(x); loads must be finite and >= 0")
            }
            out.append(row)
        }
        return out
    }

    /// Checks `[layers, experts]` float64 loads in place, rejecting NaN, infinities and negatives.
    ///
    /// Blocks of 512 values are screened branch-free on the bit patterns, which the compiler vectorizes: the sign bit
    /// of `bits | (bits + 2^52)` is set exactly for negative values (the sign bit itself) and for +inf and NaN (the
    /// add carries their all-ones exponent into the sign bit). A flagged block (which may only hold a -0) is then
    /// checked value by value, and the first bad value is reported.
    static func checkLoads(_ pointer: UnsafePointer<Double>, layers: Int, experts: Int, name: String = "loads") throws {
        let n = layers * experts
        let bits = UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt64.self)
        var start = 0
        while start < n {
            let end = min(n, start &+ 512)
            var flags: UInt64 = 0
            for i in start..<end {
                let b = bits[i]
                flags |= b | (b &+ (1 << 52))
            }
            if flags >> 63 != 0 {
                for i in start..<end {
                    let x = pointer[i]
                    // False for NaN, negatives and both infinities.
                    if !(x >= 0 && x < .infinity) {
                        throw ABIError.invalid(
                            "\(name)[\(i / experts)][\(i % experts)] = \(x); loads must be finite and >= 0")
                    }
                }
            }
            start = end
        }
    }

    /// Builds one layer's Placement from a `[numSlots]` int64 slot → expert row.
    static func placement(
        _ row: UnsafeBufferPointer<Int64>, numExperts: Int, numRanks: Int, allowSameRank: Bool, layer: Int?,
        name: String
    ) throws -> Placement {
        var slotExpert = [Int32](repeating: 0, count: row.count)
        for (s, e) in row.enumerated() {
            guard e >= 0 && e < Int64(numExperts) else {
                let at = layer.map { "[\($0)]" } ?? ""
                throw ABIError.invalid(
                    "\(name)\(at)[\(s)] = \(e) is not a logical expert id; valid ids are 0..<\(numExperts)")
            }
            slotExpert[s] = Int32(e)
        }
        do {
            return try Placement(
                slotExpert: slotExpert, numExperts: numExperts, numRanks: numRanks,
                allowSameRankReplicas: allowSameRank, layer: layer)
        } catch let error as PlacementError {
            throw ABIError.invalid("\(name): \(error.description)")
        }
    }
}
