import WideEPCore

/// Element types that cross the backend boundary.
public enum DType: String, Sendable, Codable {
    /// IEEE float32: hidden rows, weights, routing weights.
    case float32
    /// Signed 32-bit integers: expert ids, slot ids, counts, row indices.
    case int32

    /// Bytes per element.
    public var size: Int { 4 }
}

/// An opaque block of backend memory (host memory for the CPU backend, a device pointer for CUDA).
///
/// Ownership: a buffer is created by `MoEKernels.allocate` and owned by whoever holds the reference; the memory is
/// released when the last reference goes away (the backend's class `deinit`). A buffer never moves while alive, so
/// its address may be captured (e.g. in a CUDA graph). Buffers are only passed back to the backend that made them.
public protocol DeviceBuffer: AnyObject {
    /// Size of the allocation in bytes.
    var byteCount: Int { get }
}

/// The fixed slot buffers of one rank for one layer: the weights of every local slot.
///
/// Allocated once (`slotsPerRank` experts' worth) and rewritten in place by migration; they never move.
public struct SlotWeights<Buffer: DeviceBuffer> {
    /// Gate and up projections of every local slot, float32 [slotsPerRank, 2I, H]; rows 0..<I are W1, I..<2I W3.
    public let w13: Buffer
    /// Down projections of every local slot, float32 [slotsPerRank, H, I].
    public let w2: Buffer
    /// Local slots on this rank.
    public let slotsPerRank: Int
    /// Hidden size H.
    public let hiddenSize: Int
    /// Routed-expert intermediate size I.
    public let intermediateSize: Int

    public init(w13: Buffer, w2: Buffer, slotsPerRank: Int, hiddenSize: Int, intermediateSize: Int) {
        self.w13 = w13
        self.w2 = w2
        self.slotsPerRank = slotsPerRank
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
    }
}

extension SlotWeights {
    /// Floats of one slot's W13 and W2 blocks, after checking a `writeSlot` request against them.
    ///
    /// - Throws: `PlacementError.invalidArgument` naming the slot and the sizes when `localSlot` is out of range or
    ///   the source blocks have the wrong length.
    public func checkSlotWrite(localSlot: Int, w13: Int, w2: Int) throws -> (w13: Int, w2: Int) {
        let n13 = 2 * intermediateSize * hiddenSize, n2 = hiddenSize * intermediateSize
        guard w13 == n13, w2 == n2, localSlot >= 0, localSlot < slotsPerRank else {
            throw PlacementError.invalidArgument(
                "writeSlot: slot \(localSlot) of \(slotsPerRank) with \(w13)/\(w2) floats, expected \(n13)/\(n2)")
        }
        return (n13, n2)
    }
}

/// Router and shared-expert weights of one layer, replicated on every rank.
public struct DenseWeights<Buffer: DeviceBuffer> {
    /// Router weight, float32 [E, H].
    public let router: Buffer
    /// Selection-only correction bias, float32 [E]; nil when the config has none.
    public let correctionBias: Buffer?
    /// Shared expert gate+up, float32 [2·Is, H]; nil without shared experts.
    public let sharedW13: Buffer?
    /// Shared expert down, float32 [H, Is]; nil without shared experts.
    public let sharedW2: Buffer?
    /// Qwen2 shared-expert gate, float32 [H]; nil unless `config.sharedExpertGate`.
    public let sharedGate: Buffer?
    /// Shared intermediate width Is (numShared × sharedIntermediateSize), 0 without shared experts.
    public let sharedIntermediate: Int

    public init(
        router: Buffer, correctionBias: Buffer?, sharedW13: Buffer?, sharedW2: Buffer?, sharedGate: Buffer?,
        sharedIntermediate: Int
    ) {
        self.router = router
        self.correctionBias = correctionBias
        self.sharedW13 = sharedW13
        self.sharedW2 = sharedW2
        self.sharedGate = sharedGate
        self.sharedIntermediate = sharedIntermediate
    }
}
