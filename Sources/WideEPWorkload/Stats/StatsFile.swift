import Foundation

/// Expert-load statistics (DESIGN.md §7): token counts per layer and expert, optionally per step.
///
/// On disk it is a safetensors file with tensor `expert_load`, or a JSON object `{"expert_load": [...]}`, of shape
/// `[layers, experts]` (totals) or `[iterations, layers, experts]` (per-step counts), in any integer or float dtype,
/// with optional metadata (model, EP size, step range, layer ids). Counts are finite and non-negative.
public struct StatsFile: Sendable, Equatable {
    /// Per-step counts, [steps][layers][experts]; nil when the file only has totals.
    public let perStep: [[[Double]]]?
    /// Counts summed over all steps, [layers][experts].
    public let totals: [[Double]]
    /// Optional facts about the statistics.
    public var metadata: StatsMetadata
    /// Path the file was loaded from, used in error messages; nil for statistics built in memory.
    public var path: String?

    /// MoE layers (L).
    public var numLayers: Int { totals.count }
    /// Experts per layer (E).
    public var numExperts: Int { totals.first?.count ?? 0 }
    /// Steps on the per-step axis, nil without one.
    public var numSteps: Int? { perStep?.count }

    /// Statistics with totals only, [layers][experts].
    ///
    /// - Throws: `StatsError` for an empty or ragged table, a bad count, or metadata that disagrees with the shape.
    public init(totals: [[Double]], metadata: StatsMetadata = StatsMetadata(), path: String? = nil) throws {
        let where_ = path ?? "statistics"
        try Self.checkTable(totals, path: where_, prefix: "expert_load")
        self.perStep = nil
        self.totals = totals
        self.metadata = metadata
        self.path = path
        try checkMetadata()
    }

    /// Statistics with per-step counts, [steps][layers][experts]; totals are their sum.
    ///
    /// - Throws: `StatsError` for an empty or ragged array, a bad count, or metadata that disagrees with the shape.
    public init(perStep: [[[Double]]], metadata: StatsMetadata = StatsMetadata(), path: String? = nil) throws {
        let where_ = path ?? "statistics"
        guard let first = perStep.first else { throw StatsError.wrongShape(path: where_, shape: [0]) }
        try Self.checkTable(first, path: where_, prefix: "expert_load[0]")
        let l = first.count, e = first[0].count
        var sum = [[Double]](repeating: [Double](repeating: 0, count: e), count: l)
        for (t, step) in perStep.enumerated() {
            guard step.count == l else {
                throw StatsError.ragged(path: where_, location: "expert_load[\(t)]", count: step.count, expected: l)
            }
            try Self.checkTable(step, path: where_, prefix: "expert_load[\(t)]", experts: e)
            for i in 0..<l { for j in 0..<e { sum[i][j] += step[i][j] } }
        }
        self.perStep = perStep
        self.totals = sum
        self.metadata = metadata
        self.path = path
        try checkMetadata()
    }

    /// Loads `path`: `.safetensors` and `.json` by extension, anything else by looking at the first bytes.
    ///
    /// - Throws: `FileAccessError` when the file cannot be read, `StatsError` / `SafeTensorsError` when its contents
    ///   are not valid statistics.
    public static func load(path: String) throws -> StatsFile {
        switch (path as NSString).pathExtension.lowercased() {
        case "safetensors": return try loadSafeTensors(path: path)
        case "json": return try loadJSON(path: path)
        default: break
        }
        let (bytes, size) = try FileAccessError.head(path, count: 16)
        // Safetensors: a plausible little-endian header length, then the header's opening brace. A JSON text read
        // as a length is far larger than any file.
        if bytes.count >= 9 && bytes[8] == UInt8(ascii: "{") {
            let length = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if length <= UInt64(size - 8) { return try loadSafeTensors(path: path) }
        }
        if let first = bytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }), first == UInt8(ascii: "{") {
            return try loadJSON(path: path)
        }
        throw StatsError.unknownFormat(path: path)
    }

    /// Writes the statistics atomically: JSON for a `.json` path, safetensors otherwise (`dtype` defaults to I64 when
    /// every count is an integer, else F64).
    public func save(path: String, dtype: SafeTensorsDType? = nil) throws {
        if (path as NSString).pathExtension.lowercased() == "json" {
            try AtomicFile.write(try jsonData(), to: path)
        } else {
            try AtomicFile.write(try safeTensorsData(dtype: dtype), to: path)
        }
    }

    /// Exponentially decayed loads, [layers][experts]: Σₜ decay^(T−1−t) · counts[t], the newest step weighing 1, as
    /// `LoadStatistics.decayedLoads` computes them online. Without a per-step axis these are the totals.
    public func decayedTotals(decay: Double) -> [[Double]] {
        guard let perStep else { return totals }
        var acc = [[Double]](repeating: [Double](repeating: 0, count: numExperts), count: numLayers)
        for step in perStep {
            for i in 0..<numLayers { for j in 0..<numExperts { acc[i][j] = acc[i][j] * decay + step[i][j] } }
        }
        return acc
    }

    /// The statistics of steps `range` only (e.g. the first half to plan on, the second to evaluate on).
    ///
    /// - Throws: `StatsError.badStepRange` without a per-step axis or for an empty or out-of-range `range`.
    public func steps(_ range: Range<Int>) throws -> StatsFile {
        let where_ = path ?? "statistics"
        guard let perStep else {
            throw StatsError.badStepRange(path: where_, reason: "has no per-step axis, cannot select steps \(range)")
        }
        guard !range.isEmpty, range.lowerBound >= 0, range.upperBound <= perStep.count else {
            throw StatsError.badStepRange(
                path: where_, reason: "steps \(range) are empty or outside 0..<\(perStep.count)")
        }
        var meta = metadata
        let base = metadata.stepRange?.lowerBound ?? 0
        meta.stepRange = (base + range.lowerBound)..<(base + range.upperBound)
        return try StatsFile(perStep: Array(perStep[range]), metadata: meta, path: path)
    }

    // MARK: Validation

    /// Checks a [layers][experts] table: non-empty, rectangular, finite non-negative counts.
    static func checkTable(_ t: [[Double]], path: String, prefix: String, experts: Int? = nil) throws {
        guard let first = t.first, !first.isEmpty else {
            throw StatsError.wrongShape(path: path, shape: [t.count, t.first?.count ?? 0])
        }
        let e = experts ?? first.count
        for (i, row) in t.enumerated() {
            guard row.count == e else {
                throw StatsError.ragged(path: path, location: "\(prefix)[\(i)]", count: row.count, expected: e)
            }
            for (j, x) in row.enumerated() where !(x.isFinite && x >= 0) {
                throw StatsError.badCount(path: path, location: "\(prefix)[\(i)][\(j)]", value: x)
            }
        }
    }

    /// Checks that the metadata agrees with the data's shape.
    func checkMetadata() throws {
        let where_ = path ?? "statistics"
        if let ids = metadata.layerIds, ids.count != numLayers {
            throw StatsError.badMetadata(
                path: where_, key: "layers", reason: "lists \(ids.count) layer ids but expert_load has \(numLayers) layers")
        }
        if let r = metadata.epSize, r < 1 {
            throw StatsError.badMetadata(path: where_, key: "ep_size", reason: "\(r) must be >= 1")
        }
        if let range = metadata.stepRange, let steps = numSteps, range.count != steps {
            throw StatsError.badMetadata(
                path: where_, key: "step_range",
                reason: "[\(range.lowerBound), \(range.upperBound)) covers \(range.count) steps but expert_load has \(steps)")
        }
    }
}
