/// Operations of the rendezvous store's wire protocol. Each request and reply is one frame.
enum StoreOp: UInt8 {
    /// key, value → ok
    case set = 1
    /// key, timeout ms → value | timeout | abort
    case get = 2
    /// key, delta → new value (int64, stored as 8 little-endian bytes)
    case add = 3
    /// key, target, timeout ms → ok once the counter at key ≥ target | timeout | abort
    case waitAtLeast = 4
    /// rank → (the connection becomes the rank's monitor; the server pushes one abort frame on failure)
    case watch = 5
    /// (on a monitor connection) the rank is leaving cleanly
    case bye = 6
    /// message → marks the job failed (a rank reporting its own error)
    case fail = 7
}

/// Reply status byte.
enum StoreStatus: UInt8 {
    case ok = 0
    case timeout = 1
    case abort = 2
}

/// Builds and parses frames: a sequence of length-prefixed byte strings and little-endian integers.
struct FrameWriter {
    var bytes: [UInt8] = []
    init(_ op: UInt8) { bytes.append(op) }
    mutating func u64(_ v: UInt64) { bytes += withUnsafeBytes(of: v.littleEndian, Array.init) }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func blob(_ b: [UInt8]) { u64(UInt64(b.count)); bytes += b }
    mutating func string(_ s: String) { blob(Array(s.utf8)) }
}

struct FrameReader {
    let bytes: [UInt8]
    var pos = 0
    init(_ b: [UInt8]) { bytes = b }

    mutating func u8() throws -> UInt8 {
        guard pos < bytes.count else { throw DistributedError.protocolError("short frame") }
        defer { pos += 1 }
        return bytes[pos]
    }
    mutating func u64() throws -> UInt64 {
        guard pos + 8 <= bytes.count else { throw DistributedError.protocolError("short frame") }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[pos + i]) << (8 * UInt64(i)) }
        pos += 8
        return v
    }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func blob() throws -> [UInt8] {
        let n = Int(try u64())
        guard n >= 0, pos + n <= bytes.count else { throw DistributedError.protocolError("short frame") }
        defer { pos += n }
        return Array(bytes[pos..<pos + n])
    }
    mutating func string() throws -> String { String(decoding: try blob(), as: UTF8.self) }
}

extension Int64 {
    /// 8 little-endian bytes.
    var storeBytes: [UInt8] { withUnsafeBytes(of: littleEndian, Array.init) }

    /// Reads 8 little-endian bytes (missing bytes count as zero).
    init(storeBytes b: [UInt8]) {
        var v: UInt64 = 0
        for i in 0..<Swift.min(8, b.count) { v |= UInt64(b[i]) << (8 * UInt64(i)) }
        self = Int64(bitPattern: v)
    }
}
