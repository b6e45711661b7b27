#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WideEPCore

/// Version of the C ABI exported by libwideep.so. It changes when a signature or a status code changes, or a function
/// is added (3 added `wideep_log2phy`, 4 `wideep_rebalance_experts`).
@_cdecl("wideep_abi_version")
public func wideep_abi_version() -> Int32 { 4 }

/// The library's version string, e.g. "0.1.0"; a NUL-terminated static string owned by the library.
@_cdecl("wideep_version")
public func wideep_version() -> UnsafePointer<CChar> { UnsafePointer(ABIStrings.version) }

/// The message of the last failed call on the calling thread, or "" when that call succeeded.
///
/// The pointer is owned by the library and stays valid until the next wideep call on the same thread.
@_cdecl("wideep_last_error")
public func wideep_last_error() -> UnsafePointer<CChar> { LastError.current }

/// Static C strings handed out by the ABI; allocated once and never freed.
enum ABIStrings {
    /// Package version of libwideep.
    static let versionText = "0.1.0"
    static let version: UnsafeMutablePointer<CChar> = strdup(versionText)!
    static let empty: UnsafeMutablePointer<CChar> = strdup("")!
}
