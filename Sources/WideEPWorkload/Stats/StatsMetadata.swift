/// Optional facts carried by a stats file next to `expert_load`.
public struct StatsMetadata: Sendable, Equatable, Codable {
    /// Model name (e.g. "deepseek-r1").
    public var model: String?
    /// EP size the statistics were recorded at.
    public var epSize: Int?
    /// Iterations covered, half-open `[lowerBound, upperBound)`; for a per-step file its length is the step count.
    public var stepRange: Range<Int>?
    /// Free-text description of the traffic.
    public var workload: String?
    /// Where the numbers come from (free text; a JSON object is kept as compact JSON).
    public var source: String?
    /// The model's layer number of each row of `expert_load` (e.g. 3...60 for DeepSeek-V3, whose first 3 layers are
    /// dense), [layers]. Placement files use them as their layer keys.
    public var layerIds: [Int]?

    public init(
        model: String? = nil, epSize: Int? = nil, stepRange: Range<Int>? = nil, workload: String? = nil,
        source: String? = nil, layerIds: [Int]? = nil
    ) {
        self.model = model
        self.epSize = epSize
        self.stepRange = stepRange
        self.workload = workload
        self.source = source
        self.layerIds = layerIds
    }
}
