import Foundation

/// Builds a safetensors file in memory and writes it atomically (temporary file + rename).
///
/// Tensors are laid out in the order they were added. The JSON header has sorted keys and is padded with spaces to a
/// multiple of 8 bytes, as the reference writer does, so the data section starts 8-byte aligned.
public struct SafeTensorsWriter {
    /// The `__metadata__` string map written into the header (omitted when empty).
    public var metadata: [String: String]

    private struct Pending {
        var name: String
        var dtype: SafeTensorsDType
        var shape: [Int]
        var bytes: [UInt8]
    }
    private var pending: [Pending] = []

    /// An empty file with optional metadata.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Names added so far, in order.
    public var names: [String] { pending.map(\.name) }

    /// Adds a tensor from its raw little-endian bytes.
    ///
    /// - Throws: `SafeTensorsError.invalidTensor` for a duplicate or reserved name, a negative dimension, or a byte
    ///   count that is not shape × dtype size.
    public mutating func add(name: String, dtype: SafeTensorsDType, shape: [Int], rawBytes: [UInt8]) throws {
        try checkName(name)
        let count = try Self.elementCount(name: name, shape: shape)
        guard rawBytes.count == count * dtype.byteSize else {
            throw SafeTensorsError.invalidTensor(
                name: name, reason: "\(rawBytes.count) bytes given, shape \(shape) × \(dtype.rawValue) needs \(count * dtype.byteSize)")
        }
        pending.append(Pending(name: name, dtype: dtype, shape: shape, bytes: rawBytes))
    }

    /// Adds a tensor from Double values, row-major, converted to `dtype` (floats round to nearest even; integers
    /// round to nearest and clamp to the type's range).
    public mutating func add(name: String, shape: [Int], values: [Double], as dtype: SafeTensorsDType) throws {
        try checkName(name)
        let count = try Self.elementCount(name: name, shape: shape)
        guard values.count == count else {
            throw SafeTensorsError.invalidTensor(name: name, reason: "\(values.count) values given, shape \(shape) needs \(count)")
        }
        var bytes = [UInt8](repeating: 0, count: count * dtype.byteSize)
        bytes.withUnsafeMutableBytes { out in
            values.withUnsafeBufferPointer { v in
                for i in 0..<count { dtype.store(v[i], out, i) }
            }
        }
        pending.append(Pending(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Adds a tensor from Float values, row-major, converted to `dtype`.
    public mutating func add(name: String, shape: [Int], floats values: [Float], as dtype: SafeTensorsDType) throws {
        try add(name: name, shape: shape, values: values.map(Double.init), as: dtype)
    }

    /// Adds an integer tensor from Int64 values, exactly for I64 / U64 (two's complement) and clamped for narrower
    /// integer types.
    ///
    /// - Throws: `SafeTensorsError.invalidTensor` when `dtype` is a float type.
    public mutating func add(name: String, shape: [Int], integers values: [Int64], as dtype: SafeTensorsDType) throws {
        guard dtype.isInteger else {
            throw SafeTensorsError.invalidTensor(name: name, reason: "Int64 values need an integer dtype, got \(dtype.rawValue)")
        }
        if dtype == .i64 || dtype == .u64 {
            try checkName(name)
            let count = try Self.elementCount(name: name, shape: shape)
            guard values.count == count else {
                throw SafeTensorsError.invalidTensor(name: name, reason: "\(values.count) values given, shape \(shape) needs \(count)")
            }
            var bytes = [UInt8](repeating: 0, count: count * 8)
            bytes.withUnsafeMutableBytes { out in
                for i in 0..<count { out.storeBytes(of: values[i].littleEndian, toByteOffset: i * 8, as: Int64.self) }
            }
            pending.append(Pending(name: name, dtype: dtype, shape: shape, bytes: bytes))
        } else {
            try add(name: name, shape: shape, values: values.map(Double.init), as: dtype)
        }
    }

    /// The complete file contents: length prefix, padded JSON header, data.
    public func encoded() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for t in pending {
            header[t.name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
            offset += t.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        let padded = (json.count + 7) / 8 * 8
        json.append(contentsOf: [UInt8](repeating: 0x20, count: padded - json.count))
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in pending { out.append(contentsOf: t.bytes) }
        return out
    }

    /// Writes the file to `path` atomically.
    ///
    /// - Throws: `FileAccessError.cannotWrite` when the folder is missing or not writable.
    public func write(to path: String) throws {
        try AtomicFile.write(try encoded(), to: path)
    }

    private func checkName(_ name: String) throws {
        guard !name.isEmpty, name != "__metadata__" else {
            throw SafeTensorsError.invalidTensor(name: name, reason: "name must be non-empty and not __metadata__")
        }
        guard !pending.contains(where: { $0.name == name }) else {
            throw SafeTensorsError.invalidTensor(name: name, reason: "added twice")
        }
    }

    private static func elementCount(name: String, shape: [Int]) throws -> Int {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw SafeTensorsError.invalidTensor(name: name, reason: "shape \(shape) has a negative dimension")
        }
        return shape.reduce(1, *)
    }
}
