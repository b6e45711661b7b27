/// Bad run settings or inputs, with what was wrong and what would be valid.
public enum RunError: Error, CustomStringConvertible, Equatable {
    case invalidInput(String)
    case invalidOption(name: String, value: String, expected: String)

    public var description: String {
        switch self {
        case let .invalidInput(why): return why
        case let .invalidOption(name, value, expected): return "\(name) \(value) is invalid: expected \(expected)"
        }
    }
}
