import Foundation
import WideEPCore

extension HFConfig {
    /// Typed access to config.json keys; `null` counts as absent, a value of the wrong kind is an error.
    struct Keys {
        let object: [String: Any]
        let path: String

        private func value(_ key: String) -> Any? {
            guard let v = object[key], !(v is NSNull) else { return nil }
            return v
        }

        private func wrong(_ key: String, _ v: Any, _ expected: String) -> HFConfigError {
            .wrongType(path: path, key: key, found: JSONNumbers.kind(v), expected: expected)
        }

        func string(_ key: String) throws -> String? {
            guard let v = value(key) else { return nil }
            guard let s = v as? String else { throw wrong(key, v, "a string") }
            return s
        }

        func strings(_ key: String) throws -> [String]? {
            guard let v = value(key) else { return nil }
            guard let a = v as? [Any], let s = a as? [String] else { throw wrong(key, v, "a list of strings") }
            return s
        }

        func int(_ key: String) throws -> Int? {
            guard let v = value(key) else { return nil }
            guard let x = JSONNumbers.int(v) else { throw wrong(key, v, "an integer") }
            return x
        }

        func ints(_ key: String) throws -> [Int]? {
            guard let v = value(key) else { return nil }
            guard let a = v as? [Any] else { throw wrong(key, v, "a list of integers") }
            return try a.map {
                guard let x = JSONNumbers.int($0) else { throw wrong(key, v, "a list of integers") }
                return x
            }
        }

        func requiredInt(_ key: String, _ family: Family) throws -> Int {
            guard let x = try int(key) else {
                throw HFConfigError.missingKey(path: path, key: key, family: family.rawValue)
            }
            return x
        }

        func double(_ key: String) throws -> Double? {
            guard let v = value(key) else { return nil }
            guard let x = JSONNumbers.double(v) else { throw wrong(key, v, "a number") }
            return x
        }

        func bool(_ key: String) throws -> Bool? {
            guard let v = value(key) else { return nil }
            guard let n = v as? NSNumber, JSONNumbers.double(v) == nil else { throw wrong(key, v, "true or false") }
            return n.boolValue
        }
    }
}

/// Why a config.json cannot become a `MoEConfig`. Every message names the file and the key.
public enum HFConfigError: Error, CustomStringConvertible, Equatable {
    /// Not JSON, or not an object.
    case malformedJSON(path: String, reason: String)
    /// Neither `model_type` nor `architectures` names a supported MoE family.
    case unknownModel(path: String, modelType: String?, architectures: [String], supported: [String])
    /// A key the family needs is absent.
    case missingKey(path: String, key: String, family: String)
    /// A key has the wrong JSON kind.
    case wrongType(path: String, key: String, found: String, expected: String)
    /// A key's value is understood but not supported (e.g. DeepSeek-V2's `group_limited_greedy`).
    case unsupported(path: String, key: String, value: String, supported: String)
    /// The resulting configuration (after overrides) is invalid.
    case invalid(path: String, ConfigError)

    public var description: String {
        switch self {
        case let .malformedJSON(path, reason):
            return "\(path): malformed JSON: \(reason)"
        case let .unknownModel(path, modelType, archs, supported):
            let what = modelType.map { "model_type '\($0)'" } ?? "no model_type"
            return "\(path): unsupported model: \(what), architectures \(archs); supported model_type values: "
                + supported.joined(separator: ", ")
        case let .missingKey(path, key, family):
            return "\(path): missing key '\(key)', required for \(family) configs"
        case let .wrongType(path, key, found, expected):
            return "\(path): key '\(key)' is \(found), expected \(expected)"
        case let .unsupported(path, key, value, supported):
            return "\(path): \(key) '\(value)' is not supported; supported: \(supported)"
        case let .invalid(path, error):
            return "\(path): \(error)"
        }
    }
}
