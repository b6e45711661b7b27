/// The shape of one expert-parallel group as the communication kernels see it.
public struct EPShape: Sendable, Equatable {
    /// Ranks R (at most 32).
    public var ranks: Int
    /// Hidden size H (a multiple of 128).
    public var hidden: Int
    /// Routed experts E (a multiple of R; E/R per rank).
    public var experts: Int
    /// Experts per token K.
    public var topK: Int
    /// Most tokens any rank dispatches at once in normal mode.
    public var maxTokens: Int
    /// Low-latency capacity: most tokens per rank in one low-latency dispatch (0 disables the mode's buffers).
    public var lowLatencyTokens: Int

    public init(ranks: Int, hidden: Int, experts: Int, topK: Int, maxTokens: Int, lowLatencyTokens: Int) {
        self.ranks = ranks
        self.hidden = hidden
        self.experts = experts
        self.topK = topK
        self.maxTokens = maxTokens
        self.lowLatencyTokens = lowLatencyTokens
    }

    /// Experts per rank.
    public var expertsPerRank: Int { experts / ranks }

    /// Bytes of one dispatched row: H·2 for bf16, H + 4·H/128 for FP8 (codes then scales), rounded up to 16.
    public func rowStride(fp8: Bool) -> Int {
        let raw = fp8 ? hidden + 4 * (hidden / 128) : hidden * 2
        return (raw + 15) / 16 * 16
    }

    /// Throws when the kernels cannot serve this shape, saying what is valid.
    public func validate() throws {
        func bad(_ s: String) -> CommLayoutError { .shape(s) }
        guard ranks >= 1 && ranks <= 32 else { throw bad("ranks must be in 1...32, got \(ranks)") }
        guard hidden > 0 && hidden % 128 == 0 else { throw bad("hidden size must be a positive multiple of 128, got \(hidden)") }
        guard experts > 0 && experts % ranks == 0 else {
            throw bad("experts (\(experts)) must be a positive multiple of the ranks (\(ranks))")
        }
        guard topK >= 1 && topK <= experts else { throw bad("top-k must be in 1...\(experts), got \(topK)") }
        guard maxTokens >= 1 else { throw bad("max tokens per rank must be at least 1, got \(maxTokens)") }
        guard lowLatencyTokens >= 0 else { throw bad("low-latency tokens must be ≥ 0, got \(lowLatencyTokens)") }
    }
}

/// Byte offsets of the regions of the symmetric buffer, identical on every rank (the kernels' `L[]` table).
///
/// Regions, each 256-byte aligned: flags int32 [8 kinds][R]; count matrix int32 [2][R][R]; low-latency counts int32
/// [E/R][R]; normal receive rows [R·maxTokens][rowStride]; their metadata int32 [R·maxTokens][1 + 2K]; normal combine
/// rows bf16 [R·maxTokens][H] (at the source, in send order); low-latency receive rows [E/R][R][cap][rowStride];
/// their (token, k) headers int32 [E/R][R][cap][2]; low-latency combine rows bf16 [cap][K][H].
public struct EPBufferLayout: Sendable, Equatable {
    /// Offsets in the order of the kernels' `L_*` indices.
    public let offsets: [Int]
    /// Total bytes of the symmetric buffer.
    public let totalBytes: Int
    /// Normal-mode rows each rank can receive (R · maxTokens).
    public let receiveRows: Int
    /// Row stride of the receive regions (the bf16 stride; FP8 rows are shorter and fit).
    public let rowStride: Int

    /// Index of each region in `offsets`.
    public enum Region: Int, CaseIterable {
        case flags, matrix, lowLatencyCounts, receive, meta, combine, lowLatencyReceive, lowLatencyHeaders,
            lowLatencyCombine
    }

    /// Kinds of flags (the kernels' `K_*`).
    public static let flagKinds = 8

    public init(shape s: EPShape) throws {
        try s.validate()
        let r = s.ranks, epr = s.expertsPerRank, cap = s.lowLatencyTokens
        rowStride = s.rowStride(fp8: false)
        receiveRows = r * s.maxTokens
        let sizes = [
            Self.flagKinds * r * 4,
            2 * r * r * 4,
            epr * r * 4,
            receiveRows * rowStride,
            receiveRows * (1 + 2 * s.topK) * 4,
            receiveRows * s.hidden * 2,
            epr * r * cap * rowStride,
            epr * r * cap * 2 * 4,
            cap * s.topK * s.hidden * 2,
        ]
        var offs: [Int] = []
        var acc = 0
        for size in sizes {
            offs.append(acc)
            acc += (size + 255) / 256 * 256
        }
        offsets = offs
        totalBytes = acc
    }

    /// Offset of `region`.
    public func offset(_ region: Region) -> Int { offsets[region.rawValue] }
}
