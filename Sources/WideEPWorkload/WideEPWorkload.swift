import WideEPCore

/// Traffic generators and the stats, trace and placement file formats (DESIGN.md §7).
public enum WideEPWorkload {
    /// Format version written into file metadata.
    public static let formatVersion = 1
}
