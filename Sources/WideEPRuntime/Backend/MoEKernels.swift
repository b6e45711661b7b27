import WideEPCore

/// The compute half of a backend: every kernel one MoE layer forward needs (DESIGN.md §4), on backend buffers.
///
/// One instance serves one EP rank; it is used by one thread at a time (the rank's thread), and may use its own
/// worker threads or streams inside. Every method is stream-ordered: it may return before the work finishes on an
/// asynchronous device, except the methods that return host values (`layout`, `arrange`, `download`), which
/// synchronize first. Shapes are row-major; "[T, H] float32" means T rows of H contiguous floats.
///
/// Metadata that the host must see to size the next step (send counts, per-slot counts) is returned as host arrays;
/// everything else stays in `Buffer`s. The CPU backend (`WideEPCPU.CPUKernels`) is the reference implementation:
/// a GPU kernel with the same name must produce the same integers and the same floats within rounding.
public protocol MoEKernels: AnyObject {
    /// The backend's memory handle.
    associatedtype Buffer: DeviceBuffer

    /// Backend name as shown by `--device` ("cpu", "cuda").
    var deviceName: String { get }

    // MARK: Memory

    /// Allocates `count` elements of `dtype` (contents undefined). The caller owns the buffer.
    func allocate(_ dtype: DType, count: Int) throws -> Buffer
    /// Copies `source` into `buffer` starting at element `offset` (elements of `buffer`'s dtype, 4 bytes each).
    func upload(_ source: UnsafeRawBufferPointer, to buffer: Buffer, offset: Int) throws
    /// Copies `destination.count` bytes from `buffer`, starting at element `offset`, to host memory (synchronizes).
    func download(_ buffer: Buffer, offset: Int, into destination: UnsafeMutableRawBufferPointer) throws
    /// Copies `count` 4-byte elements between buffers of this backend.
    func copy(_ source: Buffer, sourceOffset: Int, to destination: Buffer, destinationOffset: Int, count: Int) throws

    // MARK: Routing and statistics

    /// Router GEMM plus top-K selection (`Router.route` semantics, including its tie-breaking and output order).
    ///
    /// - Parameters:
    ///   - hidden: float32 [tokens, H].
    ///   - logitOffset: optional float32 [E] added to every token's router logits before scoring (the workload's
    ///     popularity steering); nil for none.
    ///   - experts: out, int32 [tokens, K].
    ///   - weights: out, float32 [tokens, K] combine weights.
    func route(
        hidden: Buffer, tokens: Int, dense: DenseWeights<Buffer>, logitOffset: Buffer?, config: MoEConfig,
        experts: Buffer, weights: Buffer) throws
    /// Per-expert counts of `tokens × topK` routed pairs: int32 [E] out (`counts`, overwritten).
    func countExperts(experts: Buffer, tokens: Int, topK: Int, numExperts: Int, counts: Buffer) throws

    // MARK: Dispatch

    /// Assigns each (token, k) pair a global slot following `split` (see `SlotSplit`): int32 [tokens, K] out.
    func mapToSlots(experts: Buffer, tokens: Int, topK: Int, split: SlotSplit, slots: Buffer) throws
    /// Builds the send layout from the slots and weights ([tokens, K] each): one send row per (token, destination
    /// rank), grouped by rank, with K (local slot, weight) metadata pairs per row (−1 / 0 for pairs bound elsewhere).
    ///
    /// - Returns: rows sent to each rank, [numRanks] (host).
    func layout(
        slots: Buffer, weights: Buffer, tokens: Int, topK: Int, slotsPerRank: Int, numRanks: Int,
        into layout: DispatchLayout<Buffer>) throws -> [Int]
    /// Gathers the send rows: `sendRows[i] = hidden[layout.sendToken[i]]`, float32 [rows, H].
    func permute(hidden: Buffer, hiddenSize: Int, layout: DispatchLayout<Buffer>, rows: Int, sendRows: Buffer) throws
    /// Rearranges `rows` received rows expert-major from their metadata (int32/float32 pairs, [rows][K]).
    ///
    /// - Returns: entries per local slot, [slotsPerRank] (host); entries of slot s occupy positions
    ///   `sum(counts[..<s]) ..< sum(counts[...s])`, received rows ascending inside a slot.
    func arrange(
        recvMeta: Buffer, rows: Int, topK: Int, slotsPerRank: Int, into layout: ExpertLayout<Buffer>) throws -> [Int]
    /// Gathers received rows into expert-major order: `x[p] = recvRows[layout.entryRow[p]]`, float32 [entries, H].
    func gatherExpertRows(
        recvRows: Buffer, hiddenSize: Int, layout: ExpertLayout<Buffer>, entries: Int, x: Buffer) throws

    // MARK: Expert compute

    /// Grouped SwiGLU FFN over the local slots: for slot s and its `slotCounts[s]` rows of `x`,
    /// `h = silu(x·W1ᵀ) ⊙ (x·W3ᵀ)` and `y = h·W2ᵀ`. `x`, `y`: float32 [entries, H]; `scratch`: float32 ≥ [entries, 2I].
    func groupedFFN(
        x: Buffer, slotCounts: [Int], weights: SlotWeights<Buffer>, scratch: Buffer, y: Buffer) throws
    /// Per received row, the weighted sum of its expert outputs: `out[r] = Σ_k weight[r,k] · y[position[r,k]]` over the
    /// row's used pairs. `recvMeta` gives the weights; float32 [rows, H] out.
    func reduceExpertOutputs(
        y: Buffer, recvMeta: Buffer, layout: ExpertLayout<Buffer>, rows: Int, topK: Int, hiddenSize: Int,
        out: Buffer) throws

    // MARK: Combine

    /// Sums each token's returned rows (one per destination rank it was sent to), float32 [tokens, H] out
    /// (overwritten; tokens sent nowhere get zeros).
    func combine(
        returned: Buffer, layout: DispatchLayout<Buffer>, tokens: Int, hiddenSize: Int, out: Buffer) throws
    /// Adds the shared expert to `out` ([tokens, H]): `out += g(x) · SwiGLU_shared(x)` where g is
    /// `sigmoid(x · sharedGate)` when `dense.sharedGate` is set, else 1. `scratch` float32 ≥ [tokens, 2·Is].
    func addSharedExpert(
        hidden: Buffer, tokens: Int, hiddenSize: Int, dense: DenseWeights<Buffer>, scratch: Buffer, out: Buffer) throws

    // MARK: Model glue and migration

    /// RMSNorm over rows: `out[t] = x[t] / sqrt(mean(x[t]²) + eps)` (unit weight), float32 [tokens, H].
    func rmsNorm(x: Buffer, tokens: Int, hiddenSize: Int, eps: Float, out: Buffer) throws
    /// `x += y` over `count` float32 elements.
    func addInPlace(_ x: Buffer, _ y: Buffer, count: Int) throws
    /// Writes one expert's weights (host float32, W13 [2I, H] and W2 [H, I]) into local slot `localSlot` of the fixed
    /// slot buffers. It must complete before it returns, so a caller can publish the new placement right after.
    /// Unlike the other methods it is called from the migration thread while the rank's thread runs other layers,
    /// so it must be safe to run concurrently with them (e.g. its own copy stream); it only touches `weights`.
    func writeSlot(
        w13: UnsafeBufferPointer<Float>, w2: UnsafeBufferPointer<Float>, into weights: SlotWeights<Buffer>,
        localSlot: Int) throws

    // MARK: Layer-wise migration (defaults suit backends whose methods finish before returning, like the CPU)

    /// Rank thread, right after a forward that read `weights`: a marker of every slot read issued so far, which the
    /// migration thread hands to `beginSlotWrites` so the rewrites of those slots start only after the reads
    /// finished (CUDA: an event recorded on the compute stream). nil when the reads are done on return.
    func markSlotReads(_ weights: SlotWeights<Buffer>) throws -> AnyObject?
    /// Migration thread: makes the slot writes issued next wait for `readsDone` (CUDA: the copy stream waits on
    /// the event, on the device, so the host does not block).
    func beginSlotWrites(after readsDone: AnyObject?) throws
    /// Migration thread: `writeSlot`, except that it may return before the copy lands (CUDA: queued on the copy
    /// stream); `finishSlotWrites` completes it. The source must stay alive and unchanged until then.
    func enqueueSlotWrite(
        w13: UnsafeBufferPointer<Float>, w2: UnsafeBufferPointer<Float>, into weights: SlotWeights<Buffer>,
        localSlot: Int) throws
    /// Migration thread: returns once every slot write enqueued so far has landed (CUDA: records a "copied" event
    /// on the copy stream and waits for it), with a marker the compute stream can wait on (nil when none is needed).
    func finishSlotWrites() throws -> AnyObject?
    /// Rank thread, before the next forward that reads the rewritten slots: orders later compute after the
    /// `copied` marker of `finishSlotWrites` (CUDA: the compute stream waits on the event, on the device).
    func orderAfterSlotWrites(_ copied: AnyObject?) throws
    /// Rank thread, after a forward of a layer that switches to `placement` at the next step: prepares what the
    /// first forward with `placement` would otherwise build itself (CUDA: uploads its slot-mapping tables), so that
    /// forward allocates no device memory while migration copies run (an allocation may synchronize the device).
    func preparePlacement(_ placement: Placement) throws
    /// Page-locks host memory `region` (the expert store) so slot writes from it run asynchronously at full copy
    /// bandwidth; returns false when the backend does not or cannot (the writes then still work, from pageable
    /// memory). Undo with `unpinHostMemory` before the memory is freed.
    func pinHostMemory(_ region: UnsafeRawBufferPointer) -> Bool
    /// Undoes a successful `pinHostMemory(region)`.
    func unpinHostMemory(_ region: UnsafeRawBufferPointer)
}

extension MoEKernels {
    public func markSlotReads(_ weights: SlotWeights<Buffer>) throws -> AnyObject? { nil }
    public func beginSlotWrites(after readsDone: AnyObject?) throws {}
    public func enqueueSlotWrite(
        w13: UnsafeBufferPointer<Float>, w2: UnsafeBufferPointer<Float>, into weights: SlotWeights<Buffer>,
        localSlot: Int
    ) throws {
        try writeSlot(w13: w13, w2: w2, into: weights, localSlot: localSlot)
    }
    public func finishSlotWrites() throws -> AnyObject? { nil }
    public func orderAfterSlotWrites(_ copied: AnyObject?) throws {}
    public func preparePlacement(_ placement: Placement) throws {}
    public func pinHostMemory(_ region: UnsafeRawBufferPointer) -> Bool { false }
    public func unpinHostMemory(_ region: UnsafeRawBufferPointer) {}
}
