import Foundation

/// Which logical expert each fixed slot buffer of one rank and layer currently holds, [slotsPerRank].
///
/// Written by the migrator after a slot's copy completes, read by the forward to prove it never sees a slot whose
/// weights disagree with the placement it uses. Thread-safe.
public final class SlotContents: @unchecked Sendable {
    private var held: [Int32]
    private let lock = NSLock()

    public init(_ experts: [Int32]) { held = experts }

    /// The experts held, [slotsPerRank].
    public var experts: [Int32] {
        lock.lock()
        defer { lock.unlock() }
        return held
    }

    /// Records that local slot `slot` now holds `expert`.
    public func set(_ slot: Int, _ expert: Int32) {
        lock.lock()
        held[slot] = expert
        lock.unlock()
    }

    /// Local slots whose content differs from `expected` ([slotsPerRank]).
    public func mismatches(_ expected: ArraySlice<Int32>) -> Int {
        lock.lock()
        defer { lock.unlock() }
        var n = 0
        for (i, e) in expected.enumerated() where held[i] != e { n += 1 }
        return n
    }
}
