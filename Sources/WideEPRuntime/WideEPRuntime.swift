import WideEPCore

/// Backend-neutral runtime: MoELayer, Engine, OnlineBalancer, WeightMigrator and the backend protocols.
public enum WideEPRuntime {
    /// Runtime API version; bumped when `MoEKernels` or `Communicator` change shape.
    public static let apiVersion = 1
}
