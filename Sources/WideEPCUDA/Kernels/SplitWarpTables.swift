import WideEPCore

/// The packed placement-only input of the one-warp balanced split (`SplitWarpSource`), built once per placement.
///
/// One int32 array, read by the kernel in a single sweep. Sections (offsets from the shape, see `SplitWarpSource`):
/// - replica sources [NS], aligned with `replicaSlots`: the expert whose whole count lands on that replica (the first
///   replica of a single-rank expert), `-2` for a multi expert's run entry (written by the warp), else `-1` (quota 0);
/// - home [NE]: the rank of a single-rank expert (it adds its count there), -1 for a multi-rank expert;
/// - per multi expert slot m < MMAX: `expert | ranks << 16 | color << 24` (the color is the expert's level in the
///   kernel's certified schedule: a greedy coloring of the conflict graph, experts on three or more ranks first so
///   they share levels, then by conflicts descending; experts of one color share no rank);
/// - run entries [KMAX][MMAX]: `replica | rank << 16` of the expert's i-th rank (ascending), entries past the
///   expert's ranks repeating its first;
/// - conflict masks [NW][MMAX]: bit b of word w set when multi expert 32·w + b shares a rank with m (m excluded).
public struct SplitWarpTables: Equatable, Sendable {
    /// Most multi-rank experts the one-warp kernel takes (4 per lane).
    public static let maxMultiExperts = 128
    /// Most ranks of the kernel's certified schedule (its lower bound sorts the ranks, NR² / 32 compares per lane);
    /// larger placements run Core's schedule only.
    public static let maxCertifiedRanks = 128

    /// Multi experts per lane (MPL ≥ 1), also the number of 32-bit conflict mask words.
    public let expertsPerLane: Int
    /// Rank slots per expert (KMAX): the group width of `SplitTables`, a power of two ≥ 2.
    public let ranksPerExpert: Int
    /// The packed tables, int32.
    public let packed: [Int32]
    /// The color of each multi expert (its level in the certified schedule), [M].
    public let colors: [Int32]

    /// Multi expert slots (32 × `expertsPerLane`).
    public var multiCapacity: Int { 32 * expertsPerLane }

    /// Packs `tables` of `placement`; nil when it has more than `limit` (the kernel's `maxMultiExperts`) multi-rank
    /// experts. The CPU twin packs any placement (`limit: .max`).
    public init?(tables t: SplitTables, placement p: Placement, limit: Int = Self.maxMultiExperts) {
        let nM = t.multiCount
        guard nM <= limit else { return nil }
        let mpl = max(1, (nM + 31) / 32), mmax = 32 * mpl, kmax = t.groupWidth
        let nS = p.numSlots, nR = p.numRanks, nE = p.numExperts
        let offHome = nS, offInfo = offHome + nE, offRun = offInfo + mmax, offConf = offRun + mmax * kmax
        var out = [Int32](repeating: 0, count: offConf + mpl * mmax)
        // Replica sources.
        for i in 0..<nS { out[i] = -1 }
        for e in 0..<nE {
            if t.multiIndex[e] < 0 { out[Int(p.replicaStart[e])] = Int32(e) }
        }
        for rep in t.runReplica { out[Int(rep)] = -2 }
        // Homes of the single-rank experts.
        for e in 0..<nE { out[offHome + e] = t.multiIndex[e] < 0 ? t.expertHome[e] : -1 }
        precondition(nR <= 1 << 15 && nS <= 1 << 15, "ranks and slots fit 15 bits")
        precondition(nE <= 1 << 16 && t.maxRanks < 256, "experts fit 16 bits and ranks per expert 8 bits")
        // Multi experts: runs, conflict masks, colors, info.
        var neighbours = [[Int]](repeating: [], count: nM)
        for m in 0..<nM {
            let a = Int(t.runStart[m]), b = Int(t.runStart[m + 1])
            for i in a..<b { out[offRun + (i - a) * mmax + m] = t.runReplica[i] | t.runRank[i] << 16 }
            // Entries past the run repeat its first one, so the kernel loads them unconditionally (and ignores them).
            for i in (b - a)..<kmax { out[offRun + i * mmax + m] = out[offRun + m] }
            var mask = [UInt32](repeating: 0, count: mpl)
            for i in a..<b {
                let r = Int(t.runRank[i])
                for j in Int(t.rankStart[r])..<Int(t.rankStart[r + 1]) where Int(t.rankMulti[j]) != m {
                    let o = Int(t.rankMulti[j])
                    if mask[o / 32] & (1 << UInt32(o % 32)) == 0 { neighbours[m].append(o) }
                    mask[o / 32] |= 1 << UInt32(o % 32)
                }
            }
            for w in 0..<mpl { out[offConf + w * mmax + m] = Int32(bitPattern: mask[w]) }
        }
        let width = (0..<nM).map { Int(t.runStart[$0 + 1] - t.runStart[$0]) }
        let color = Self.colorConflicts(neighbours: neighbours, ranks: width)
        // The kernel reads 7 bits of color; only the twin packs more than 128 multi experts (and runs Core's order).
        for m in 0..<nM { out[offInfo + m] = t.multiExpert[m] | Int32(width[m]) << 16 | (color[m] & 0x7f) << 24 }
        colors = color
        expertsPerLane = mpl
        ranksPerExpert = kmax
        packed = out
    }

    /// Greedy coloring of the conflict graph (`neighbours[m]`: the multi experts sharing a rank with m; `ranks[m]`: its
    /// rank count): experts on three or more ranks first (the kernel's wider fills then share levels), then by
    /// neighbours descending, ties by index; each takes the smallest color none of its colored neighbours has.
    /// Returns the colors, each below the expert count (at most 127 with the kernel's 128 multi experts).
    static func colorConflicts(neighbours: [[Int]], ranks: [Int]) -> [Int32] {
        let order = neighbours.indices.sorted {
            let wa = ranks[$0] > 2, wb = ranks[$1] > 2
            if wa != wb { return wa }
            if neighbours[$0].count != neighbours[$1].count { return neighbours[$0].count > neighbours[$1].count }
            return $0 < $1
        }
        var color = [Int32](repeating: -1, count: neighbours.count)
        var taken = [Bool](repeating: false, count: neighbours.count + 1)
        for m in order {
            for o in neighbours[m] where color[o] >= 0 { taken[Int(color[o])] = true }
            var c = 0
            while taken[c] { c += 1 }
            color[m] = Int32(c)
            for o in neighbours[m] where color[o] >= 0 { taken[Int(color[o])] = false }
        }
        return color
    }

    /// Offset of the expert homes in `packed`.
    public static func homeOffset(_ p: Placement) -> Int { p.numSlots }
    /// Offset of the multi expert info words in `packed`.
    public static func infoOffset(_ p: Placement) -> Int { homeOffset(p) + p.numExperts }
    /// Offset of the run entries in `packed`.
    public func runOffset(_ p: Placement) -> Int { Self.infoOffset(p) + multiCapacity }
    /// Offset of the conflict masks in `packed`.
    public func conflictOffset(_ p: Placement) -> Int { runOffset(p) + multiCapacity * ranksPerExpert }

    /// Conflict mask of multi expert `m` as a set of multi expert indices.
    public func conflicts(of m: Int, placement p: Placement) -> Set<Int> {
        var s = Set<Int>()
        for w in 0..<expertsPerLane {
            let bits = UInt32(bitPattern: packed[conflictOffset(p) + w * multiCapacity + m])
            for b in 0..<32 where bits & (1 << UInt32(b)) != 0 { s.insert(32 * w + b) }
        }
        return s
    }
}
