import WideEPCore

/// Version of the C ABI exported by libwideep.so.
@_cdecl("wideep_abi_version")
public func wideep_abi_version() -> Int32 { 1 }
