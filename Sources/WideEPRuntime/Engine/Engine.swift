import Dispatch
import WideEPCore

/// A layer whose new placement becomes visible in this step, once its slot copies (in flight on the migration
/// thread) are done. The forward of that layer waits on `ready`; every other layer runs meanwhile.
public struct StagedLayer {
    /// The placement the layer uses from this step on.
    public let placement: Placement
    /// Left when the layer's copies have finished.
    public let ready: DispatchGroup

    public init(placement: Placement, ready: DispatchGroup) {
        self.placement = placement
        self.ready = ready
    }
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
    /// Placement in use per layer [L]; changes only between steps (`commit`).
    public private(set) var placements: [Placement]
    /// `layers[l][i]` is layer l on local rank `backend.localRanks[i]`.
    public let layers: [[Layer]]
    /// RMSNorm epsilon.
    public var rmsEps: Float = 1e-6

    let rankBuffers: [RankBuffers<Buffer>]

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
        var all: [[Layer]] = []
        for (l, w) in store.enumerated() {
            all.append(try backend.localRanks.map { r in
                try Layer(weights: w, placement: placements[l], rank: r, kernels: backend.kernels(rank: r),
                          comm: backend.communicator(rank: r), splitPolicy: splitPolicy)
            })
        }
        layers = all
        rankBuffers = backend.localRanks.map { _ in RankBuffers() }
    }

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
