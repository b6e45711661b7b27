#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connected TCP stream socket that sends and receives length-prefixed frames. Closes its descriptor once.
final class FrameSocket: @unchecked Sendable {
    private(set) var fd: Int32
    private let sendLock = NSLockLite()

    init(fd: Int32) {
        self.fd = fd
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close() }

    func close() {
        if fd >= 0 {
            _ = shutdown(fd, Int32(SHUT_RDWR))
            _ = systemClose(fd)
            fd = -1
        }
    }

    /// Connects to `host:port`, retrying every `retryDelay` seconds up to `attempts` times.
    static func connect(host: String, port: Int, attempts: Int, retryDelay: Double) throws -> FrameSocket {
        var lastError = "no attempt"
        for attempt in 1...max(1, attempts) {
            var hints = addrinfo()
            hints.ai_family = AF_INET
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var res: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, "\(port)", &hints, &res)
            if rc == 0, let info = res {
                defer { freeaddrinfo(res) }
                let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
                if fd >= 0 {
                    if systemConnect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                        return FrameSocket(fd: fd)
                    }
                    lastError = "connect: errno \(errno)"
                    _ = systemClose(fd)
                }
            } else {
                lastError = "cannot resolve host (getaddrinfo \(rc))"
            }
            if attempt < attempts { usleep(UInt32(retryDelay * 1_000_000)) }
        }
        throw DistributedError.connectFailed(host: host, port: port, attempts: attempts, reason: lastError)
    }

    /// Sends one frame: a 4-byte little-endian length, then the payload.
    func send(_ payload: [UInt8]) throws {
        sendLock.lock()
        defer { sendLock.unlock() }
        var frame = withUnsafeBytes(of: UInt32(payload.count).littleEndian, Array.init)
        frame += payload
        var off = 0
        while off < frame.count {
            let n = frame.withUnsafeBytes { systemSend(fd, $0.baseAddress! + off, frame.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                throw DistributedError.peerLost(rank: nil, detail: "connection closed while sending")
            }
            off += n
        }
    }

    /// Receives one frame; nil on an orderly close by the peer.
    func receive() throws -> [UInt8]? {
        guard let header = try readExactly(4) else { return nil }
        let len = Int(UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24)
        guard len <= 1 << 30 else { throw DistributedError.protocolError("frame of \(len) bytes is too large") }
        if len == 0 { return [] }
        guard let body = try readExactly(len) else {
            throw DistributedError.protocolError("connection closed inside a frame")
        }
        return body
    }

    private func readExactly(_ n: Int) throws -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: n)
        var off = 0
        while off < n {
            let r = buf.withUnsafeMutableBytes { systemRecv(fd, $0.baseAddress! + off, n - off, 0) }
            if r == 0 {
                if off == 0 { return nil }
                throw DistributedError.protocolError("connection closed after \(off) of \(n) bytes")
            }
            if r < 0 {
                if errno == EINTR { continue }
                if off == 0 { return nil }
                throw DistributedError.system(call: "recv", errno: errno)
            }
            off += r
        }
        return buf
    }
}

/// A listening TCP socket on all interfaces.
final class ListenSocket {
    let fd: Int32
    let port: Int

    init(port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DistributedError.system(call: "socket", errno: errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr = in_addr(s_addr: 0)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            _ = systemClose(fd)
            throw DistributedError.protocolError(
                "cannot listen on port \(port) (errno \(e)\(e == EADDRINUSE ? ": address in use; pick another MASTER_PORT" : ""))")
        }
        guard listen(fd, 512) == 0 else {
            let e = errno
            _ = systemClose(fd)
            throw DistributedError.system(call: "listen", errno: e)
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: bound.sin_port))
    }

    /// Accepts one connection; nil once the socket has been closed.
    func accept() -> FrameSocket? {
        while true {
            let c = systemAccept(fd, nil, nil)
            if c >= 0 { return FrameSocket(fd: c) }
            if errno == EINTR { continue }
            return nil
        }
    }

    func close() {
        _ = shutdown(fd, Int32(SHUT_RDWR))
        _ = systemClose(fd)
    }
}

/// A tiny mutex over pthread, usable without Foundation's NSLock in hot socket paths.
final class NSLockLite: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func lock() { pthread_mutex_lock(&m) }
    func unlock() { pthread_mutex_unlock(&m) }
}

@inline(__always) private func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}
@inline(__always) private func systemConnect(_ fd: Int32, _ a: UnsafePointer<sockaddr>!, _ l: socklen_t) -> Int32 {
    #if canImport(Glibc)
    return Glibc.connect(fd, a, l)
    #else
    return Darwin.connect(fd, a, l)
    #endif
}
@inline(__always) private func systemSend(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int, _ f: Int32) -> Int {
    #if canImport(Glibc)
    return Glibc.send(fd, p, n, f)
    #else
    return Darwin.send(fd, p, n, f)
    #endif
}
@inline(__always) private func systemRecv(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int, _ f: Int32) -> Int {
    #if canImport(Glibc)
    return Glibc.recv(fd, p, n, f)
    #else
    return Darwin.recv(fd, p, n, f)
    #endif
}
@inline(__always) private func systemAccept(_ fd: Int32, _ a: UnsafeMutablePointer<sockaddr>?, _ l: UnsafeMutablePointer<socklen_t>?) -> Int32 {
    #if canImport(Glibc)
    return Glibc.accept(fd, a, l)
    #else
    return Darwin.accept(fd, a, l)
    #endif
}
