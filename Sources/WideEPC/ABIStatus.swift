import WideEPCore

/// Status codes returned by every `wideep_*` function that can fail; mirrored as `WIDEEP_*` in include/wideep.h.
enum ABIStatus: Int32 {
    /// Success; outputs are fully written.
    case ok = 0
    /// A size, count, shape, value or policy name is invalid; nothing meaningful was written.
    case invalidArgument = 1
    /// A required pointer is NULL.
    case nullPointer = 2
    /// An output buffer is too small (e.g. `max_replicas` below the largest replica count).
    case capacity = 3
    /// A valid request that the planner could not satisfy (e.g. no distinct-rank packing exists).
    case infeasible = 4
    /// An unexpected failure inside the library.
    case internalError = 5
}

/// An error raised while checking or serving a C call; carries its status code and one clear message.
struct ABIError: Error, CustomStringConvertible {
    /// Status returned to the caller.
    let status: ABIStatus
    /// Message stored for `wideep_last_error()`.
    let description: String

    static func invalid(_ message: String) -> ABIError { ABIError(status: .invalidArgument, description: message) }
    static func null(_ argument: String) -> ABIError {
        ABIError(status: .nullPointer, description: "\(argument) is NULL; pass a valid buffer")
    }
    static func capacity(_ message: String) -> ABIError { ABIError(status: .capacity, description: message) }
}

/// Runs one C entry point's body: clears the thread's last error, and maps any thrown error to a status code and a
/// stored message so that nothing ever unwinds into C.
@inline(__always)
func withABIStatus(_ function: String, _ body: () throws -> Void) -> Int32 {
    LastError.clear()
    do {
        try body()
        return ABIStatus.ok.rawValue
    } catch let error as ABIError {
        LastError.set("\(function): \(error.description)")
        return error.status.rawValue
    } catch let error as PlacementError {
        let text = error.description
        // The planners report an unsatisfiable packing as an invalid argument with "cannot place".
        let status: ABIStatus = text.contains("cannot place") ? .infeasible : .invalidArgument
        LastError.set("\(function): \(text)")
        return status.rawValue
    } catch {
        LastError.set("\(function): \(error)")
        return ABIStatus.internalError.rawValue
    }
}
