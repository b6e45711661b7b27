import Foundation

/// Reading numbers out of `JSONSerialization` trees without confusing them with booleans.
enum JSONNumbers {
    /// The value of a JSON number, or nil for booleans, strings, arrays, objects and null.
    ///
    /// `x is Bool` is true for the NSNumbers 0 and 1 as well, so booleans are told apart by their ObjC type code.
    @inline(__always)
    static func double(_ any: Any) -> Double? {
        guard let n = any as? NSNumber else { return nil }
        if n.objCType.pointee == UInt8(ascii: "c") { return nil }
        return n.doubleValue
    }

    /// An exact integer, or nil for fractions, out-of-range values and non-numbers.
    static func int(_ any: Any) -> Int? {
        guard let d = double(any), d.rounded() == d, abs(d) < 9.0e18 else { return nil }
        return (any as! NSNumber).intValue
    }

    /// A short description of a JSON value's kind for error messages ("a string", "an array", …).
    static func kind(_ any: Any) -> String {
        if any is NSNull { return "null" }
        if let n = any as? NSNumber { return n.objCType.pointee == UInt8(ascii: "c") ? "a boolean" : "a number" }
        if any is String { return "a string" }
        if any is [Any] { return "an array" }
        if any is [String: Any] { return "an object" }
        return "\(type(of: any))"
    }

    /// A one-line reason from a JSONSerialization error.
    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let d = ns.userInfo[NSDebugDescriptionErrorKey] as? String { return d }
        return String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}
