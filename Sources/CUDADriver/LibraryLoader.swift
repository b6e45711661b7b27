import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a CUDA library was found (or why not), for `wide-ep doctor`.
public struct LibraryLocation: Sendable, Codable, Equatable {
    /// Short library name: "cuda", "nvrtc", "cublas", "cublasLt", "nccl".
    public let name: String
    /// The path or soname that `dlopen` accepted; nil when not found.
    public let path: String?
    /// Every candidate tried, in discovery order.
    public let tried: [String]
    /// The last `dlerror()` message when nothing loaded.
    public let error: String?
}

/// An open `dlopen` handle with typed symbol lookup. Kept open for the life of the process.
public final class SharedLibrary: @unchecked Sendable {
    /// Short name, as in `LibraryLocation.name`.
    public let name: String
    /// What `dlopen` accepted.
    public let path: String
    let handle: UnsafeMutableRawPointer

    init(name: String, path: String, handle: UnsafeMutableRawPointer) {
        self.name = name
        self.path = path
        self.handle = handle
    }

    /// The address of `symbol`, or nil.
    public func address(_ symbol: String) -> UnsafeMutableRawPointer? { dlsym(handle, symbol) }

    /// Resolves `symbol` as a C function pointer of type `T` (a `@convention(c)` function type), trying each name.
    ///
    /// This is the one place where a raw symbol becomes a typed function pointer.
    public func function<T>(_ names: String..., as type: T.Type = T.self) throws -> T {
        for n in names {
            if let p = dlsym(handle, n) { return unsafeBitCast(p, to: T.self) }
        }
        throw CUDAError.missingSymbol(library: path, symbol: names.joined(separator: " or "))
    }

    /// Like `function(_:as:)`, but nil when the symbol is absent (optional features).
    public func optionalFunction<T>(_ names: String..., as type: T.Type = T.self) -> T? {
        for n in names {
            if let p = dlsym(handle, n) { return unsafeBitCast(p, to: T.self) }
        }
        return nil
    }
}

/// Finds CUDA libraries in the discovery order of DESIGN.md §6:
/// an environment override, the plain soname, `$CUDA_HOME/lib64` and `/usr/local/cuda/lib64`, then Python
/// site-packages (`nvidia/cu13/lib`, `nvidia/<pkg>/lib`).
public enum LibraryLoader {
    /// One library's discovery recipe.
    public struct Spec: Sendable {
        /// Short name ("nvrtc").
        public let name: String
        /// Environment variable that overrides the search with a full path (e.g. `WIDEEP_NVRTC_LIB`).
        public let envOverride: String
        /// Sonames in preference order (e.g. `libnvrtc.so.13`, `libnvrtc.so.12`).
        public let sonames: [String]
        /// Sub-folders of site-packages that may hold it (e.g. `nvidia/cu13/lib`).
        public let pythonDirs: [String]
        /// A symbol every version exports, used to report the file a soname resolved to.
        public let probe: String

        public init(name: String, envOverride: String, sonames: [String], pythonDirs: [String], probe: String) {
            self.name = name
            self.envOverride = envOverride
            self.sonames = sonames
            self.pythonDirs = pythonDirs
            self.probe = probe
        }
    }

    /// The driver: `libcuda.so.1` (installed by the driver package, never in a toolkit folder).
    public static let cuda = Spec(
        name: "cuda", envOverride: "WIDEEP_CUDA_LIB", sonames: ["libcuda.so.1", "libcuda.so"], pythonDirs: [], probe: "cuInit")
    /// NVRTC, CUDA 13 first, then 12.
    public static let nvrtc = Spec(
        name: "nvrtc", envOverride: "WIDEEP_NVRTC_LIB", sonames: ["libnvrtc.so.13", "libnvrtc.so.12"],
        pythonDirs: ["nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"], probe: "nvrtcVersion")
    /// cuBLAS, CUDA 13 first, then 12.
    public static let cublas = Spec(
        name: "cublas", envOverride: "WIDEEP_CUBLAS_LIB", sonames: ["libcublas.so.13", "libcublas.so.12"],
        pythonDirs: ["nvidia/cu13/lib", "nvidia/cublas/lib"], probe: "cublasCreate_v2")
    /// cuBLASLt, found beside cuBLAS.
    public static let cublasLt = Spec(
        name: "cublasLt", envOverride: "WIDEEP_CUBLASLT_LIB", sonames: ["libcublasLt.so.13", "libcublasLt.so.12"],
        pythonDirs: ["nvidia/cu13/lib", "nvidia/cublas/lib"], probe: "cublasLtCreate")
    /// NCCL 2.
    public static let nccl = Spec(
        name: "nccl", envOverride: "WIDEEP_NCCL_LIB", sonames: ["libnccl.so.2"],
        pythonDirs: ["nvidia/nccl/lib", "nvidia/cu13/lib"], probe: "ncclGetVersion")

    /// Candidate paths for `spec`, in discovery order.
    public static func candidates(for spec: Spec, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> [String]
    {
        var out: [String] = []
        if let p = environment[spec.envOverride], !p.isEmpty { out.append(p) }
        out.append(contentsOf: spec.sonames)
        var toolkitDirs: [String] = []
        if let home = environment["CUDA_HOME"], !home.isEmpty { toolkitDirs.append(home + "/lib64") }
        if let home = environment["CUDA_PATH"], !home.isEmpty { toolkitDirs.append(home + "/lib64") }
        toolkitDirs.append("/usr/local/cuda/lib64")
        for dir in toolkitDirs {
            for so in spec.sonames { out.append(dir + "/" + so) }
        }
        for site in sitePackages(environment: environment) {
            for sub in spec.pythonDirs {
                for so in spec.sonames { out.append(site + "/" + sub + "/" + so) }
            }
        }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Python site-packages folders that may carry NVIDIA wheels: `$VIRTUAL_ENV`, `$WIDEEP_PYTHON_SITE`, and
    /// the usual system and venv locations (`/opt/*/.venv`, `/usr/local/lib`, `/usr/lib`, `~/.local`).
    static func sitePackages(environment: [String: String]) -> [String] {
        var roots: [String] = []
        if let s = environment["WIDEEP_PYTHON_SITE"], !s.isEmpty { roots.append(s) }
        var prefixes: [String] = []
        if let v = environment["VIRTUAL_ENV"], !v.isEmpty { prefixes.append(v + "/lib") }
        if let home = environment["HOME"] { prefixes.append(home + "/.local/lib") }
        let fm = FileManager.default
        if let opts = try? fm.contentsOfDirectory(atPath: "/opt") {
            for o in opts.sorted() { prefixes.append("/opt/\(o)/.venv/lib"); prefixes.append("/opt/\(o)/lib") }
        }
        prefixes += ["/usr/local/lib", "/usr/lib"]
        for prefix in prefixes {
            guard let entries = try? fm.contentsOfDirectory(atPath: prefix) else { continue }
            for e in entries.sorted().reversed() where e.hasPrefix("python3") {
                for kind in ["site-packages", "dist-packages"] {
                    let dir = "\(prefix)/\(e)/\(kind)"
                    if fm.fileExists(atPath: dir + "/nvidia") { roots.append(dir) }
                }
            }
        }
        return roots
    }

    /// Opens the first candidate that loads; returns the library and its discovery record.
    public static func open(_ spec: Spec) -> (SharedLibrary?, LibraryLocation) {
        let tried = candidates(for: spec)
        var lastError: String?
        for c in tried {
            if c.hasPrefix("/") && !FileManager.default.fileExists(atPath: c) { continue }
            if let h = dlopen(c, RTLD_NOW | RTLD_GLOBAL) {
                let lib = SharedLibrary(name: spec.name, path: resolvedPath(handle: h, probe: spec.probe, fallback: c), handle: h)
                return (lib, LibraryLocation(name: spec.name, path: lib.path, tried: tried, error: nil))
            }
            if let e = dlerror() { lastError = String(cString: e) }
        }
        return (nil, LibraryLocation(name: spec.name, path: nil, tried: tried, error: lastError))
    }

    /// The file a soname resolved to, read from `/proc/self/maps` (Linux); `fallback` elsewhere.
    static func resolvedPath(handle: UnsafeMutableRawPointer, probe: String, fallback: String) -> String {
        if fallback.hasPrefix("/") { return fallback }
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return fallback }
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            if path.hasSuffix("/" + fallback) || path.contains("/" + fallback + ".") { return path }
        }
        return fallback
    }
}
