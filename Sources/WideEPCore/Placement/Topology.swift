/// The EP ranks and how they group into nodes (NVLink domains).
public struct Topology: Equatable, Hashable, Sendable, Codable {
    /// EP ranks (GPUs), R.
    public let numRanks: Int
    /// Nodes; ranks `[n × R/N, (n+1) × R/N)` share node n.
    public let numNodes: Int

    /// - Throws: `PlacementError.invalidArgument` when either count is < 1 or R is not a multiple of N.
    public init(numRanks: Int, numNodes: Int = 1) throws {
        guard numRanks >= 1 else { throw PlacementError.invalidArgument("ep-size must be >= 1, got \(numRanks)") }
        guard numNodes >= 1 && numRanks % numNodes == 0 else {
            throw PlacementError.invalidArgument(
                "node count \(numNodes) must be >= 1 and divide ep-size \(numRanks)")
        }
        self.numRanks = numRanks
        self.numNodes = numNodes
    }

    /// Ranks per node.
    public var ranksPerNode: Int { numRanks / numNodes }

    /// Node that rank `rank` belongs to.
    @inline(__always)
    public func node(ofRank rank: Int) -> Int { rank / ranksPerNode }
}
