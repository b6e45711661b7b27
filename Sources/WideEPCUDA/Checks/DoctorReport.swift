import CUDADriver

/// What `wide-ep doctor` reports: CUDA availability, versions, where each library was found, and every GPU.
public struct DoctorReport: Codable, Sendable {
    /// One visible GPU.
    public struct Device: Codable, Sendable {
        /// Device ordinal.
        public let index: Int
        /// Marketing name, e.g. "NVIDIA H200".
        public let name: String
        /// "9.0" for Hopper.
        public let computeCapability: String
        /// Streaming multiprocessors.
        public let multiprocessors: Int
        /// Device memory, GiB.
        public let totalMemoryGiB: Double
        /// Free device memory when probed, GiB.
        public let freeMemoryGiB: Double
        /// L2 cache, MiB.
        public let l2CacheMiB: Double
        /// PCI bus id, e.g. "0000:00:06.0".
        public let pciBusID: String
    }
    /// True when the driver loaded and sees at least one GPU.
    public let cudaAvailable: Bool
    /// Why not, when unavailable.
    public let reason: String?
    /// Driver's CUDA version ("13.0").
    public let driverCUDAVersion: String?
    /// NVRTC version ("13.0").
    public let nvrtcVersion: String?
    /// cuBLAS version number.
    public let cublasVersion: Int?
    /// NCCL version ("2.27.7").
    public let ncclVersion: String?
    /// Whether cuBLAS has `cublasGemmGroupedBatchedEx`.
    public let cublasGrouped: Bool?
    /// Where each library was found (path nil = not found).
    public let libraries: [LibraryLocation]
    /// Folder passed to NVRTC as `-I` (holding `cuda_bf16.h`), if any.
    public let nvrtcInclude: String?
    /// Visible GPUs.
    public let devices: [Device]
    /// P2P matrix: `p2p[i][j]` is "self", "nvlink/p2p rank N", "p2p" or "no".
    public let p2p: [[String]]

    /// Probes the machine. Never throws: failures become `reason` or nil fields.
    public static func probe() -> DoctorReport {
        let libs = CUDA.libraryLocations
        let nvrtc = (try? CUDA.nvrtc().version()).map { "\($0.major).\($0.minor)" }
        let nccl = try? CUDA.nccl().versionString()
        guard CUDA.isAvailable, let api = try? CUDA.driver() else {
            return DoctorReport(
                cudaAvailable: false, reason: CUDA.unavailableReason, driverCUDAVersion: nil, nvrtcVersion: nvrtc,
                cublasVersion: nil, ncclVersion: nccl, cublasGrouped: nil, libraries: libs, nvrtcInclude: nil,
                devices: [], p2p: [])
        }
        let drv = (try? CUDA.driverVersion()).map { "\($0.major).\($0.minor)" }
        var devices: [Device] = []
        var reason: String?
        var cublasVersion: Int?, grouped: Bool?
        let n = (try? CUDA.deviceCount()) ?? 0
        for i in 0..<n {
            do {
                let g = try GPU(ordinal: i)
                let mem = try g.memoryInfo()
                var bus = [CChar](repeating: 0, count: 64)
                _ = api.cuDeviceGetPCIBusId(&bus, 64, g.context.device)
                devices.append(Device(
                    index: i, name: g.name, computeCapability: "\(g.computeCapability.major).\(g.computeCapability.minor)",
                    multiprocessors: g.multiprocessors, totalMemoryGiB: Double(g.totalMemory) / 1_073_741_824,
                    freeMemoryGiB: Double(mem.free) / 1_073_741_824,
                    l2CacheMiB: Double((try? g.context.attribute(CUAttribute.l2CacheSize)) ?? 0) / 1_048_576,
                    pciBusID: String(cString: bus)))
                if i == 0, let h = try? g.cublas() {
                    cublasVersion = try? h.version()
                    grouped = h.api.cublasGemmGroupedBatchedEx != nil
                }
            } catch {
                reason = "device \(i): \(error)"
            }
        }
        var p2p: [[String]] = []
        for i in 0..<n {
            var row: [String] = []
            for j in 0..<n {
                if i == j { row.append("self"); continue }
                var can: Int32 = 0, rank: Int32 = 0
                _ = api.cuDeviceCanAccessPeer(&can, Int32(i), Int32(j))
                _ = api.cuDeviceGetP2PAttribute(&rank, CUAttribute.p2pPerformanceRank, Int32(i), Int32(j))
                row.append(can != 0 ? "p2p rank \(rank)" : "no")
            }
            p2p.append(row)
        }
        return DoctorReport(
            cudaAvailable: true, reason: reason, driverCUDAVersion: drv, nvrtcVersion: nvrtc,
            cublasVersion: cublasVersion, ncclVersion: nccl, cublasGrouped: grouped, libraries: libs,
            nvrtcInclude: KernelCache.includeDirectory, devices: devices, p2p: p2p)
    }
}
