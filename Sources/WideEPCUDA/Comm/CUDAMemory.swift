import CUDADriver
import Foundation
import WideEPRuntime

/// A backend buffer that lives in CUDA device memory: what the CUDA communicators move.
public protocol CUDAMemory: DeviceBuffer {
    /// The device address of the first byte.
    var devicePointer: CUdeviceptr { get }
}

/// A plain byte buffer in device memory (`cuMemAlloc`), freed once when released; the communicators' own type
/// for checks and benchmarks.
public final class CUDAByteBuffer: CUDAMemory, @unchecked Sendable {
    let storage: DeviceArray<UInt16>
    /// Bytes in the buffer (rounded up to even).
    public let byteCount: Int
    public var devicePointer: CUdeviceptr { storage.pointer }

    /// Allocates `byteCount` bytes on `gpu`.
    public init(_ gpu: GPU, byteCount: Int) throws {
        storage = try DeviceArray<UInt16>(gpu, count: (byteCount + 1) / 2)
        self.byteCount = storage.count * 2
    }
}

/// Functions that end every open communicator of this process at once (`ncclCommAbort`); pass `CommAbort.all` as
/// `DistributedSession.join(beforeExit:)` so that a lost peer never leaves a rank hanging inside NCCL.
public enum CommAbort {
    nonisolated(unsafe) private static var handlers: [ObjectIdentifier: () -> Void] = [:]
    private static let lock = NSLock()

    /// Registers `handler` for `owner` (replacing an earlier one).
    static func register(_ owner: AnyObject, _ handler: @escaping () -> Void) {
        lock.lock()
        defer { lock.unlock() }
        handlers[ObjectIdentifier(owner)] = handler
    }

    /// Removes `owner`'s handler (the communicator was destroyed normally).
    static func unregister(_ owner: AnyObject) {
        lock.lock()
        defer { lock.unlock() }
        handlers[ObjectIdentifier(owner)] = nil
    }

    /// Runs every registered handler once.
    @Sendable public static func all() {
        lock.lock()
        let hs = Array(handlers.values)
        handlers = [:]
        lock.unlock()
        for h in hs { h() }
    }
}

/// Host-value collectives through the store (small control values; each call uses a fresh sequence number).
final class StoreCollectives {
    let store: CommStore
    let rank: Int, size: Int
    let name: String
    private var sequence = 0

    init(store: CommStore, rank: Int, size: Int, name: String) {
        self.store = store
        self.rank = rank
        self.size = size
        self.name = name
    }

    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        sequence += 1
        try store.set("\(name)/gather/\(sequence)/\(rank)", bytes)
        return try (0..<size).map { try store.get("\(name)/gather/\(sequence)/\($0)", timeout: nil) }
    }

    func allGather(_ values: [Int32]) throws -> [Int32] {
        let bytes = values.withUnsafeBytes { Array($0) }
        return try allGather(bytes).flatMap { b in
            b.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        }
    }

    func allReduceSum(_ values: [Double]) throws -> [Double] {
        let parts = try allGather(values.withUnsafeBytes { Array($0) })
        var out = [Double](repeating: 0, count: values.count)
        for p in parts {
            let v = p.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            guard v.count == out.count else {
                throw CommunicatorError.countMismatch(rank: rank, detail: "all-reduce of \(out.count) values met \(v.count)")
            }
            for i in out.indices { out[i] += v[i] }
        }
        return out
    }
}
