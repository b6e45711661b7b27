/// Entry point to the CUDA libraries: loaded with `dlopen` once per process, on first use.
///
/// On a machine without a driver, `CUDA.isAvailable` is false and every accessor throws `CUDAError.libraryNotFound`;
/// nothing crashes and nothing CUDA-specific is needed at build time.
public enum CUDA {
    /// Loaded once: the driver library and its typed table, after a successful `cuInit(0)`.
    static let driverResult: (Result<(SharedLibrary, DriverAPI), CUDAError>, LibraryLocation) = {
        let (lib, loc) = LibraryLoader.open(LibraryLoader.cuda)
        guard let lib else {
            return (.failure(.libraryNotFound(library: "libcuda.so.1", tried: loc.tried)), loc)
        }
        do {
            let api = try DriverAPI(lib)
            try api.check(api.cuInit(0), "cuInit(0)")
            return (.success((lib, api)), loc)
        } catch let e as CUDAError {
            return (.failure(e), loc)
        } catch {
            return (.failure(.invalidRequest("\(error)")), loc)
        }
    }()

    static let nvrtcResult: (Result<NVRTCAPI, CUDAError>, LibraryLocation) = load(LibraryLoader.nvrtc, NVRTCAPI.init)
    /// cuBLASLt is opened first (RTLD_GLOBAL) so that cuBLAS, which needs it, resolves it whichever folder it is in.
    static let cublasResult: (Result<CUBLASAPI, CUDAError>, LibraryLocation) = {
        _ = cublasLtLocation
        return load(LibraryLoader.cublas, CUBLASAPI.init)
    }()
    static let ncclResult: (Result<NCCLAPI, CUDAError>, LibraryLocation) = load(LibraryLoader.nccl, NCCLAPI.init)
    static let cublasLtLocation: LibraryLocation = LibraryLoader.open(LibraryLoader.cublasLt).1

    static func load<T>(_ spec: LibraryLoader.Spec, _ make: (SharedLibrary) throws -> T)
        -> (Result<T, CUDAError>, LibraryLocation)
    {
        let (lib, loc) = LibraryLoader.open(spec)
        guard let lib else {
            return (.failure(.libraryNotFound(library: spec.sonames[0], tried: loc.tried)), loc)
        }
        do { return (.success(try make(lib)), loc) } catch let e as CUDAError { return (.failure(e), loc) } catch {
            return (.failure(.invalidRequest("\(error)")), loc)
        }
    }

    /// The driver table; throws when no usable driver is installed.
    public static func driver() throws -> DriverAPI { try driverResult.0.get().1 }
    /// NVRTC; throws when it is not installed where discovery looks.
    public static func nvrtc() throws -> NVRTCAPI { try nvrtcResult.0.get() }
    /// cuBLAS; throws when it is not installed where discovery looks.
    public static func cublas() throws -> CUBLASAPI { try cublasResult.0.get() }
    /// NCCL; throws when it is not installed where discovery looks.
    public static func nccl() throws -> NCCLAPI { try ncclResult.0.get() }

    /// True when the driver loads, `cuInit` succeeds and at least one device is visible. Never crashes.
    public static let isAvailable: Bool = {
        guard let api = try? driver() else { return false }
        var n: Int32 = 0
        return api.cuDeviceGetCount(&n) == 0 && n > 0
    }()

    /// Why CUDA is unavailable (the load or `cuInit` error), or nil when it is available.
    public static var unavailableReason: String? {
        if isAvailable { return nil }
        switch driverResult.0 {
        case .failure(let e): return e.description
        case .success: return "the CUDA driver loaded but reports no devices"
        }
    }

    /// Where each library was found, in the order driver, NVRTC, cuBLAS, cuBLASLt, NCCL.
    public static var libraryLocations: [LibraryLocation] {
        [driverResult.1, nvrtcResult.1, cublasResult.1, cublasLtLocation, ncclResult.1]
    }

    /// The driver's CUDA version, e.g. 13000 → (13, 0).
    public static func driverVersion() throws -> (major: Int, minor: Int) {
        let api = try driver()
        var v: Int32 = 0
        try api.check(api.cuDriverGetVersion(&v), "cuDriverGetVersion")
        return (Int(v) / 1000, (Int(v) % 1000) / 10)
    }

    /// Visible devices.
    public static func deviceCount() throws -> Int {
        let api = try driver()
        var n: Int32 = 0
        try api.check(api.cuDeviceGetCount(&n), "cuDeviceGetCount")
        return Int(n)
    }
}
