/// NVRTC entry points, resolved once from `libnvrtc.so.13` (or `.12`).
public struct NVRTCAPI: @unchecked Sendable {
    public typealias Status = Int32
    public let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Status
    public let nvrtcGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?
    public let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Status
    public let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    public let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
    public let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Status
    public let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Status
    public let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Status
    public let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Status

    init(_ lib: SharedLibrary) throws {
        nvrtcVersion = try lib.function("nvrtcVersion")
        nvrtcGetErrorString = try lib.function("nvrtcGetErrorString")
        nvrtcCreateProgram = try lib.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try lib.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try lib.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try lib.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try lib.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try lib.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try lib.function("nvrtcGetCUBIN")
    }

    /// NVRTC's own text for a status code.
    func message(_ code: Int32) -> String {
        nvrtcGetErrorString(code).map { String(cString: $0) } ?? "NVRTC error \(code)"
    }

    /// Throws `CUDAError.nvrtc` when `code` is not `NVRTC_SUCCESS`.
    func check(_ code: Int32, _ call: String, log: String = "") throws {
        if code != 0 { throw CUDAError.nvrtc(call: call, code: code, message: message(code), log: log) }
    }

    /// NVRTC's version, e.g. (13, 0).
    public func version() throws -> (major: Int, minor: Int) {
        var a: Int32 = 0, b: Int32 = 0
        try check(nvrtcVersion(&a, &b), "nvrtcVersion")
        return (Int(a), Int(b))
    }

    /// Compiles `source` to a CUBIN with `options`; the compile log is in the thrown error on failure.
    ///
    /// - Parameter name: the program name shown in the log (e.g. "routing.cu").
    public func compile(source: String, name: String, options: [String]) throws -> [UInt8] {
        var prog: OpaquePointer?
        try check(nvrtcCreateProgram(&prog, source, name, 0, nil, nil), "nvrtcCreateProgram(\(name))")
        defer { _ = nvrtcDestroyProgram(&prog) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { opts in
            nvrtcCompileProgram(prog, Int32(opts.count), opts.baseAddress)
        }
        var logSize = 0
        var log = ""
        if nvrtcGetProgramLogSize(prog, &logSize) == 0, logSize > 1 {
            var buf = [CChar](repeating: 0, count: logSize + 1)
            if nvrtcGetProgramLog(prog, &buf) == 0 { log = String(cString: buf) }
        }
        try check(status, "nvrtcCompileProgram(\(name), \(options.joined(separator: " ")))", log: log)
        var size = 0
        try check(nvrtcGetCUBINSize(prog, &size), "nvrtcGetCUBINSize(\(name))")
        var cubin = [CChar](repeating: 0, count: size)
        try check(nvrtcGetCUBIN(prog, &cubin), "nvrtcGetCUBIN(\(name))")
        return cubin.map { UInt8(bitPattern: $0) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
