import WideEPCore
import WideEPRuntime

/// The CPU reference backend: kernels and the ThreadCommunicator.
public enum WideEPCPU {
    /// Backend name as shown by `--device`.
    public static let deviceName = "cpu"
}
