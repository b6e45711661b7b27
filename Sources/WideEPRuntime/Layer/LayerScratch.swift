/// Reusable scratch buffers of one layer on one rank, grown on demand (never shrunk).
struct LayerScratch<Kernels: MoEKernels> {
    typealias Buffer = Kernels.Buffer

    /// Named scratch roles.
    enum Role: Int, CaseIterable {
        case experts, weights, counts, slots, sendRows, recvRows, recvMeta, expertRows, expertOut, ffnScratch
        case partial, returned, sharedScratch
    }

    let kernels: Kernels
    private var buffers: [Int: (buffer: Buffer, count: Int)] = [:]
    private var dispatch: DispatchLayout<Buffer>?
    private var expert: ExpertLayout<Buffer>?

    init(kernels: Kernels) { self.kernels = kernels }

    private mutating func get(_ role: Role, _ dtype: DType, _ count: Int) throws -> Buffer {
        if let b = buffers[role.rawValue], b.count >= count { return b.buffer }
        // Grow by 1.5× so slowly rising batch sizes do not reallocate every step.
        let n = max(count + count / 2, 16)
        let b = try kernels.allocate(dtype, count: n)
        buffers[role.rawValue] = (b, n)
        return b
    }

    mutating func float(_ role: Role, _ count: Int) throws -> Buffer { try get(role, .float32, count) }
    mutating func int(_ role: Role, _ count: Int) throws -> Buffer { try get(role, .int32, count) }

    /// A send layout with room for `tokens × min(K, R)` rows.
    mutating func dispatchLayout(tokens: Int, topK: Int, numRanks: Int) throws -> DispatchLayout<Buffer> {
        let rows = max(tokens * min(topK, numRanks), 1)
        if let d = dispatch, d.capacity >= rows, d.tokenCapacity >= tokens { return d }
        let cap = rows + rows / 2, tcap = max(tokens + tokens / 2, 1)
        let d = DispatchLayout(
            capacity: cap, sendToken: try kernels.allocate(.int32, count: cap),
            sendMeta: try kernels.allocate(.int32, count: cap * 2 * topK),
            tokenRows: try kernels.allocate(.int32, count: tcap + 1 + cap), tokenCapacity: tcap)
        dispatch = d
        return d
    }

    /// An expert-major layout for `rows` received rows.
    mutating func expertLayout(rows: Int, topK: Int) throws -> ExpertLayout<Buffer> {
        let n = max(rows * topK, 1)
        if let x = expert, x.capacity >= n { return x }
        let cap = n + n / 2
        let x = ExpertLayout(
            capacity: cap, entryRow: try kernels.allocate(.int32, count: cap),
            entryPosition: try kernels.allocate(.int32, count: cap))
        expert = x
        return x
    }
}
