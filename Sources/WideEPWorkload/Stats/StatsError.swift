/// Why a stats file is unusable. Every message names the file and the place inside it.
public enum StatsError: Error, CustomStringConvertible, Equatable {
    /// Neither the extension nor the first bytes say safetensors or JSON.
    case unknownFormat(path: String)
    /// The JSON does not parse, or its top level is not an object.
    case malformedJSON(path: String, reason: String)
    /// The `expert_load` tensor or key is absent.
    case missingExpertLoad(path: String, available: [String])
    /// `expert_load` is not rank 2 or 3, or has an empty dimension.
    case wrongShape(path: String, shape: [Int])
    /// A nested JSON array is shorter or longer than its siblings.
    case ragged(path: String, location: String, count: Int, expected: Int)
    /// A JSON element is not of the expected kind (number where an array was expected, string, null, …).
    case wrongElement(path: String, location: String, expected: String, found: String)
    /// A count is negative, NaN or infinite.
    case badCount(path: String, location: String, value: Double)
    /// The tensor's dtype cannot hold counts (BOOL).
    case wrongDType(path: String, dtype: String)
    /// Metadata disagrees with the data (e.g. `num_experts` ≠ the tensor's last dimension) or is malformed.
    case badMetadata(path: String, key: String, reason: String)
    /// A step range asked of the file is empty or outside its steps, or it has no per-step axis.
    case badStepRange(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownFormat(path):
            return "\(path): unknown stats format: expected a .safetensors file or a JSON object with expert_load"
        case let .malformedJSON(path, reason):
            return "\(path): malformed JSON: \(reason)"
        case let .missingExpertLoad(path, available):
            return "\(path): no expert_load found (present: \(available.isEmpty ? "nothing" : available.sorted().joined(separator: ", ")))"
        case let .wrongShape(path, shape):
            return "\(path): expert_load has shape \(shape); expected [layers, experts] or [iterations, layers, experts] "
                + "with every dimension >= 1"
        case let .ragged(path, location, count, expected):
            return "\(path): \(location) has \(count) entries, expected \(expected) like its siblings (ragged array)"
        case let .wrongElement(path, location, expected, found):
            return "\(path): \(location) is \(found), expected \(expected)"
        case let .badCount(path, location, value):
            return "\(path): \(location) = \(value) is not a valid count (must be finite and >= 0)"
        case let .wrongDType(path, dtype):
            return "\(path): expert_load has dtype \(dtype); expected an integer or float dtype"
        case let .badMetadata(path, key, reason):
            return "\(path): metadata \(key): \(reason)"
        case let .badStepRange(path, reason):
            return "\(path): \(reason)"
        }
    }
}
