import Foundation

/// A safetensors file, memory-mapped and validated on open.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {string: string}}`, then the
/// raw little-endian data; offsets are relative to the start of the data section. Opening checks the header length,
/// every entry's dtype and shape, that each byte range lies inside the data section and matches shape × dtype size,
/// and that no two ranges overlap. Tensor bytes are read lazily from the mapping.
public final class SafeTensorsFile: @unchecked Sendable {
    // Immutable after init; the mapping is read-only.

    /// Largest header the format allows (100 MB), as in the reference implementation.
    public static let maxHeaderLength = 100_000_000

    /// Path the file was opened from.
    public let path: String
    /// The `__metadata__` string map (empty when absent).
    public let metadata: [String: String]
    /// Tensor names in data-offset order.
    public let names: [String]
    /// Size of the whole file in bytes.
    public var fileSize: Int { file.size }

    private let file: MappedFile
    private let entries: [String: SafeTensor]

    /// Opens and validates `path`.
    ///
    /// - Throws: `SafeTensorsError` naming the file and, where it applies, the tensor and what was wrong.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        guard file.size >= 8 else { throw SafeTensorsError.truncated(path: path, size: file.size) }
        let prefix = file.bytes(offset: 0, count: 8)
        let headerLength = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        let available = file.size - 8
        guard headerLength >= 1, headerLength <= UInt64(available), headerLength <= UInt64(Self.maxHeaderLength) else {
            throw SafeTensorsError.badHeaderLength(path: path, length: headerLength, available: available)
        }
        let n = Int(headerLength)
        let headerBytes = file.bytes(offset: 8, count: n)
        let parsed = try Self.parseHeader(headerBytes, path: path, dataStart: 8 + n, dataSize: available - n)
        metadata = parsed.metadata
        var byName: [String: SafeTensor] = [:]
        for var t in parsed.tensors {
            t.storage = file
            byName[t.name] = t
        }
        entries = byName
        names = parsed.tensors.map(\.name)
    }

    /// Whether the file holds a tensor named `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The tensor named `name`.
    ///
    /// - Throws: `SafeTensorsError.missingTensor` listing the names present.
    public func tensor(named name: String) throws -> SafeTensor {
        guard let t = entries[name] else {
            throw SafeTensorsError.missingTensor(path: path, name: name, available: names)
        }
        return t
    }

    /// Every tensor, in data-offset order.
    public var tensors: [SafeTensor] { names.map { entries[$0]! } }

    // MARK: Header

    private static func parseHeader(
        _ bytes: UnsafeRawBufferPointer, path: String, dataStart: Int, dataSize: Int
    ) throws -> (metadata: [String: String], tensors: [SafeTensor]) {
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            throw SafeTensorsError.badHeader(path: path, reason: "not valid JSON (\(JSONNumbers.reason(error)))")
        }
        guard let object = json as? [String: Any] else {
            throw SafeTensorsError.badHeader(path: path, reason: "expected a JSON object of tensor entries")
        }
        var metadata: [String: String] = [:]
        if let m = object["__metadata__"] {
            guard let dict = m as? [String: Any] else {
                throw SafeTensorsError.badHeader(path: path, reason: "__metadata__ must be an object of strings")
            }
            for (k, v) in dict {
                guard let s = v as? String else {
                    throw SafeTensorsError.badHeader(path: path, reason: "__metadata__.\(k) must be a string")
                }
                metadata[k] = s
            }
        }
        var tensors: [SafeTensor] = []
        for (name, value) in object where name != "__metadata__" {
            tensors.append(try parseEntry(name: name, value: value, path: path, dataStart: dataStart, dataSize: dataSize))
        }
        tensors.sort { ($0.offset, $0.name) < ($1.offset, $1.name) }
        var lastEnd = dataStart
        var lastName = ""
        for t in tensors where t.byteCount > 0 {
            if t.offset < lastEnd {
                throw SafeTensorsError.overlap(path: path, tensor: t.name, other: lastName)
            }
            lastEnd = t.offset + t.byteCount
            lastName = t.name
        }
        return (metadata, tensors)
    }

    private static func parseEntry(
        name: String, value: Any, path: String, dataStart: Int, dataSize: Int
    ) throws -> SafeTensor {
        func fail(_ reason: String) -> SafeTensorsError { .badEntry(path: path, tensor: name, reason: reason) }
        guard let entry = value as? [String: Any] else { throw fail("entry must be an object") }
        guard let dtypeName = entry["dtype"] as? String else { throw fail("missing string field 'dtype'") }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw fail("unknown dtype '\(dtypeName)'; valid: "
                + SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let shapeAny = entry["shape"] as? [Any] else { throw fail("missing array field 'shape'") }
        var shape: [Int] = []
        for d in shapeAny {
            guard let x = JSONNumbers.int(d), x >= 0 else { throw fail("shape \(shapeAny) must hold non-negative integers") }
            shape.append(x)
        }
        guard let offsAny = entry["data_offsets"] as? [Any], offsAny.count == 2,
              let begin = JSONNumbers.int(offsAny[0]), let end = JSONNumbers.int(offsAny[1])
        else { throw fail("data_offsets must be [begin, end] integers") }
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw SafeTensorsError.offsetsOutOfRange(path: path, tensor: name, begin: begin, end: end, dataSize: dataSize)
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("shape \(shape) is too large") }
            count = p
        }
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, expected == end - begin else {
            throw SafeTensorsError.sizeMismatch(
                path: path, tensor: name, expected: overflow ? Int.max : expected, actual: end - begin)
        }
        return SafeTensor(name: name, dtype: dtype, shape: shape, offset: dataStart + begin, storage: nil)
    }
}
