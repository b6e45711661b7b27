import WideEPCore

/// Backend-neutral runtime: MoELayer, Engine, OnlineBalancer, WeightMigrator and the backend protocols.
///
/// A backend plugs in by implementing `MoEKernels` (compute on its `DeviceBuffer` type), `Communicator` (collectives
/// on the same buffers) and `MoEBackend` (per-rank instances and a way to run every local rank), then registering a
/// factory in `BackendRegistry` under its `--device` name. `MoELayer` (DESIGN §4), `Engine`, `WeightMigrator`,
/// `OnlineBalancer` and `ServingRun` are generic over the backend and never touch its memory directly.
public enum WideEPRuntime {
    /// Runtime API version; bumped when `MoEKernels` or `Communicator` change shape.
    public static let apiVersion = 1
}
