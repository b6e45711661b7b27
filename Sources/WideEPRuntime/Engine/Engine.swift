import Dispatch
import WideEPCore

/// What a step asks of the migrator around each layer forward, called on the rank's own thread
/// (`WeightMigrator` implements it).
public protocol LayerForwardHooks: AnyObject {
    /// Before local rank `rankIndex`'s forward of `layer`: blocks until that layer's own slot copies on that rank
    /// have landed. Returns the seconds it blocked, or nil when nothing was unfinished.
    func beforeForward(layer: Int, rankIndex: Int) throws -> Double?
    /// After the forward: may start rewriting that layer's slots on that rank.
    func afterForward(layer: Int, rankIndex: Int) throws
}

/// The model: L MoE blocks (`x ← x + MoE(RMSNorm(x))`) over R ranks of one backend, with the host expert store and
/// the active placement of every layer.
public final class Engine<B: MoEBackend> {
    public typealias Layer = MoELayer<B.Kernels, B.Comm>
    public typealias Buffer = B.Kernels.Buffer

    /// The backend.
    public let backend: B
    /// Layer shape (all layers share it).
    public let config: MoEConfig
    /// Host expert store, one per layer [L]; slot copies read from it.
    public let store: [MoELayerWeights]
    /// Placement in use per layer [L]; changes only between steps (`commit`), possibly while the layer's slot copies
    /// are still in flight (its next forward waits for them through `LayerForwardHooks`).
    public private(set) var placements: [Placement]
    /// `layers[l][i]` is layer l on local rank `backend.localRanks[i]`.
    public let layers: [[Layer]]
    /// RMSNorm epsilon.
    public var rmsEps: Float = 1e-6

    let rankBuffers: [RankBuffers<Buffer>]
    /// Store arrays pinned by `init` (their storage never moves: the store is immutable and held by `store`).
    private var pinnedRegions: [UnsafeRawBufferPointer] = []

    /// Builds every layer on every local rank and fills the slot buffers for `placements`.
    public init(backend: B, store: [MoELayerWeights], placements: [Placement], splitPolicy: SplitPolicy) throws {
        guard let first = store.first, store.count == placements.count else {
            throw PlacementError.invalidArgument(
                "engine needs one placement per layer: \(store.count) layers, \(placements.count) placements")
        }
        self.backend = backend
        config = first.config
        self.store = store
        self.placements = placements
        // Page-lock the host store once per process so the slot copies (the initial fill included) are
        // asynchronous DMA; undone in deinit, or right here if building the layers fails.
        let k = backend.kernels(rank: backend.localRanks[0])
        var pinned: [UnsafeRawBufferPointer] = []
        for w in store {
            for region in [w.w13.withUnsafeBytes { $0 }, w.w2.withUnsafeBytes { $0 }] where k.pinHostMemory(region) {
                pinned.append(region)
            }
        }
        do {
            var all: [[Layer]] = []
            for (l, w) in store.enumerated() {
                all.append(try backend.localRanks.map { r in
                    try Layer(weights: w, placement: placements[l], rank: r, kernels: backend.kernels(rank: r),
                              comm: backend.communicator(rank: r), splitPolicy: splitPolicy)
                })
            }
            // The initial slot fill may be queued (CUDA copy stream): it lands before the first forward.
            for r in backend.localRanks { _ = try backend.kernels(rank: r).finishSlotWrites() }
            layers = all
        } catch {
            for region in pinned { k.unpinHostMemory(region) }
            throw error
        }
        rankBuffers = backend.localRanks.map { _ in RankBuffers() }
        pinnedRegions = pinned
    }

    deinit {
        let k = backend.kernels(rank: backend.localRanks[0])
        for region in pinnedRegions { k.unpinHostMemory(region) }
    }

    /// Bytes of the host expert store page-locked for migration copies (0 when the backend copies from pageable
    /// memory, e.g. the CPU backend).
    public var pinnedHostBytes: Int { pinnedRegions.reduce(0) { $0 + $1.count } }

    /// Index of `rank` in `backend.localRanks`.
    func localIndex(_ rank: Int) -> Int { backend.localRanks.firstIndex(of: rank)! }

    /// Makes `placement` the active placement of `layer` (its slot buffers must already hold it).
    public func commit(layer: Int, placement: Placement) { placements[layer] = placement }
}

/// Per-rank activations, grown on demand; each is touched only by its rank's thread.
final class RankBuffers<Buffer: DeviceBuffer> {
    var capacity = 0
    var x: Buffer?
    var normed: Buffer?
    var out: Buffer?
    var offsets: [Buffer] = []
}
