import CUDADriver
import Foundation

/// What identifies one compiled module: the source, its `#define`s and the target architecture.
public struct KernelKey: Hashable, Sendable {
    /// Source name shown in logs ("routing.cu").
    public let name: String
    /// CUDA C source text.
    public let source: String
    /// `-D` definitions, sorted by name so that order never changes the key.
    public let defines: [String]
    /// NVRTC architecture, e.g. "sm_90".
    public let architecture: String

    public init(name: String, source: String, defines: [String: String], architecture: String) {
        self.name = name
        self.source = source
        self.defines = defines.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        self.architecture = architecture
    }

    /// The NVRTC options this key compiles with (plus `-I` for the CUDA include folder when one is found).
    public func options(includeDirectory: String?) -> [String] {
        var o = ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"]
        o += defines.map { "-D\($0)" }
        if let includeDirectory { o.append("-I\(includeDirectory)") }
        return o
    }
}

/// NVRTC compile cache: each `(source, defines, architecture)` is compiled and loaded once per process.
public final class KernelCache: @unchecked Sendable {
    let context: CUDAContext
    /// The architecture kernels are compiled for.
    public let architecture: String
    private var modules: [KernelKey: CUDAModule] = [:]
    private var functions: [String: CUhandle?] = [:]
    /// Launch-path cache of `function(_:_:)`, keyed without the source (see there).
    private var recent: [String: (source: String, handle: CUhandle?)] = [:]
    private let lock = NSLock()
    /// Modules compiled so far (for tests of the cache and for `doctor`).
    public private(set) var compileCount = 0

    init(context: CUDAContext, architecture: String) {
        self.context = context
        self.architecture = architecture
    }

    /// The folder holding `cuda_bf16.h`, passed to NVRTC as `-I`: `$CUDA_HOME/include`, `/usr/local/cuda/include`,
    /// or the include folder of the Python NVIDIA wheels.
    public static let includeDirectory: String? = {
        let env = ProcessInfo.processInfo.environment
        var dirs: [String] = []
        if let h = env["CUDA_HOME"], !h.isEmpty { dirs.append(h + "/include") }
        if let h = env["CUDA_PATH"], !h.isEmpty { dirs.append(h + "/include") }
        dirs.append("/usr/local/cuda/include")
        for loc in CUDA.libraryLocations where loc.name == "nvrtc" {
            if let p = loc.path, let r = p.range(of: "/lib/", options: .backwards) {
                dirs.append(String(p[..<r.lowerBound]) + "/include")
            }
        }
        return dirs.first { FileManager.default.fileExists(atPath: $0 + "/cuda_bf16.h") }
    }()

    /// The module for `key`, compiling and loading it on first use.
    public func module(_ key: KernelKey) throws -> CUDAModule {
        lock.lock()
        defer { lock.unlock() }
        if let m = modules[key] { return m }
        let nvrtc = try CUDA.nvrtc()
        let image = try nvrtc.compile(
            source: key.source, name: key.name, options: key.options(includeDirectory: Self.includeDirectory))
        let m = try CUDAModule(context: context, image: image, name: key.name)
        modules[key] = m
        compileCount += 1
        return m
    }

    /// The kernel `function` of `key`'s module.
    ///
    /// Launch paths call this for every launch, so a hit must not hash the whole source (tens of KB: about 150 µs of
    /// host time per launch was measured). Hits are found by name, defines, architecture and function, then the
    /// source is compared, which is O(1) when the caller passes the same string storage (a `static let`).
    public func function(_ key: KernelKey, _ function: String) throws -> CUhandle? {
        let quick = "\(key.name)|\(key.architecture)|\(key.defines.joined(separator: ","))|\(function)"
        lock.lock()
        if let hit = recent[quick], hit.source == key.source {
            lock.unlock()
            return hit.handle
        }
        lock.unlock()
        let f = try resolve(key, function)
        lock.lock()
        recent[quick] = (key.source, f)
        lock.unlock()
        return f
    }

    private func resolve(_ key: KernelKey, _ function: String) throws -> CUhandle? {
        let m = try module(key)
        lock.lock()
        defer { lock.unlock() }
        let fkey = "\(ObjectIdentifier(m).hashValue)/\(function)"
        if let f = functions[fkey] { return f }
        let f = try m.function(function)
        functions[fkey] = f
        return f
    }
}

/// One kernel argument, passed by value to `cuLaunchKernel`.
public enum KernelArg {
    /// A device pointer (or 0 for null).
    case ptr(CUdeviceptr)
    /// A 32-bit signed integer.
    case i32(Int32)
    /// A 64-bit signed integer.
    case i64(Int64)
    /// A 32-bit float.
    case f32(Float)

    /// `.i32` from an `Int`, trapping on overflow (sizes are validated before launching).
    public static func int(_ v: Int) -> KernelArg { .i32(Int32(v)) }
}

extension GPU {
    /// Launches `function` on `stream` (the GPU's stream by default) with `args` (each 8-byte aligned, passed by value).
    public func launch(
        _ function: CUhandle?, grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
        args: [KernelArg], name: String, on stream: CUDAStream? = nil
    ) throws {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(8, args.count * 8), alignment: 8)
        defer { storage.deallocate() }
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: args.count)
        for (i, a) in args.enumerated() {
            let slot = storage + i * 8
            switch a {
            case .ptr(let p): slot.storeBytes(of: p, as: UInt64.self)
            case .i32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .i64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .f32(let v): slot.storeBytes(of: v, as: Float.self)
            }
            pointers[i] = slot
        }
        let api = context.api
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 { return }
        try pointers.withUnsafeMutableBufferPointer { p in
            try api.check(
                api.cuLaunchKernel(
                    function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block.0), UInt32(block.1),
                    UInt32(block.2), UInt32(sharedBytes), (stream ?? self.stream).handle, p.baseAddress, nil),
                "cuLaunchKernel(\(name), grid \(grid), block \(block))")
        }
    }
}
