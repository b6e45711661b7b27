import Foundation

/// A failure reported by a CUDA library or by library discovery, carrying the library's own message.
public enum CUDAError: Error, CustomStringConvertible, Equatable {
    /// The library could not be loaded from any place in the discovery order; `tried` lists where we looked.
    case libraryNotFound(library: String, tried: [String])
    /// A library loaded but lacks a symbol we need (too old a version, or not the library we expect).
    case missingSymbol(library: String, symbol: String)
    /// A CUDA driver call failed: the call, the `CUresult` code, and `cuGetErrorName`/`cuGetErrorString`.
    case driver(call: String, code: Int32, message: String)
    /// An NVRTC call failed, with `nvrtcGetErrorString` and (for compilation) the program log.
    case nvrtc(call: String, code: Int32, message: String, log: String)
    /// A cuBLAS call failed, with `cublasGetStatusName`/`cublasGetStatusString`.
    case cublas(call: String, code: Int32, message: String)
    /// An NCCL call failed, with `ncclGetErrorString`.
    case nccl(call: String, code: Int32, message: String)
    /// The request cannot be served (e.g. device index out of range), with what would be valid.
    case invalidRequest(String)

    public var description: String {
        switch self {
        case let .libraryNotFound(lib, tried):
            return "\(lib) not found (tried: \(tried.joined(separator: ", ")))"
        case let .missingSymbol(lib, sym):
            return "\(lib) has no symbol \(sym): the library is too old or not the one expected"
        case let .driver(call, code, message):
            return "CUDA driver: \(call) failed with \(code): \(message)"
        case let .nvrtc(call, code, message, log):
            let trimmed = log.trimmingCharacters(in: .whitespacesAndNewlines)
            return "NVRTC: \(call) failed with \(code): \(message)" + (trimmed.isEmpty ? "" : "\n\(trimmed)")
        case let .cublas(call, code, message):
            return "cuBLAS: \(call) failed with \(code): \(message)"
        case let .nccl(call, code, message):
            return "NCCL: \(call) failed with \(code): \(message)"
        case let .invalidRequest(message):
            return message
        }
    }
}

