import ArgumentParser
import Foundation
import WideEPCore
import WideEPWorkload

/// `wide-ep bench locality`: the fraction of routed (token, k) pairs served on their own rank under the local-first
/// slot mapping versus the previous prefix-order mapping, with identical quotas (so identical rank loads).
struct BenchLocalityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "locality",
        abstract: "Pairs served on their own rank: local-first vs prefix-order slot mapping (same quotas).",
        discussion: """
            Each layer is planned (balanced planner) on --stats-json loads (or generated DeepSeek-V3 ones); then, per \
            EP size and --samples batches, every rank routes --tokens tokens to --top-k distinct experts drawn from \
            the layer's load profile, the balanced split gives the quotas, and every rank maps its pairs with both \
            mappings. Reported: local pairs (own-rank slot) in % of all pairs, the bound Σ min(n[s][e], Q[s][e]) \
            that no quota-exact mapping can beat, and remote token rows (distinct other destination ranks per \
            token, the dispatch all-to-all's rows). Slots: the smallest multiple of R ≥ 9/8 E; nodes: R / 8.
            """)

    @Option(name: .customLong("stats-json"), help: "Plan and route on the \"expert_load\" [layers][experts] of this JSON file.")
    var statsJSON: String?
    @Option(name: .customLong("ep-sizes"), help: "Comma-separated EP sizes.")
    var epSizes: String = "8,16,32,64"
    @Option(help: "Tokens per rank per batch.")
    var tokens: Int = 128
    @Option(name: .customLong("top-k"), help: "Experts per token.")
    var topK: Int = 8
    @Option(help: "Batches per layer and EP size.")
    var samples: Int = 2
    @Option(help: "Use only the first N layers (0 = all).")
    var layers: Int = 0
    @Option(help: "Seed of the routing and the generated loads.")
    var seed: UInt64 = 1
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// One EP size's totals over all layers and batches.
    struct Row: Codable {
        var epSize: Int
        var slots: Int
        var pairs: Int
        var localFirstLocal: Int
        var prefixOrderLocal: Int
        var maxLocal: Int
        var localFirstRemoteRows: Int
        var prefixOrderRemoteRows: Int
        var quotaMismatches: Int
        /// Host time to build one rank's tables (mean over layers and batches, 20 builds each), µs.
        var localFirstTableMicros: Double
        var prefixOrderTableMicros: Double
    }

    struct Result: Codable {
        var source: String
        var layers: Int
        var tokensPerRank: Int
        var topK: Int
        var samples: Int
        var rows: [Row]
    }

    func ranks() throws -> [Int] {
        let list = epSizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--ep-sizes must be comma-separated integers >= 1, got '\(epSizes)'")
        }
        return list.map { $0! }
    }

    func validate() throws {
        _ = try ranks()
        guard tokens >= 1 && topK >= 1 && samples >= 1 && layers >= 0 else {
            throw ValidationError("--tokens, --top-k and --samples must be >= 1 and --layers >= 0")
        }
    }

    func run() throws {
        var loads = try statsJSON.map { try BenchPlanCommand.readLoads(path: $0) } ?? (try generatedLoads())
        if layers > 0 { loads = Array(loads.prefix(layers)) }
        let e = loads[0].count
        guard topK <= e else { throw ValidationError("--top-k \(topK) exceeds the \(e) experts of the loads") }
        var rows: [Row] = []
        var rng = SplitMix64(seed: seed)
        for r in try ranks() {
            let slots = ((e * 9 / 8) + r - 1) / r * r
            let topo = try Topology(numRanks: r, numNodes: max(1, r / 8))
            CLIOutput.progress("bench locality: EP\(r), \(slots) slots, \(loads.count) layers")
            var row = Row(epSize: r, slots: slots, pairs: 0, localFirstLocal: 0, prefixOrderLocal: 0, maxLocal: 0,
                          localFirstRemoteRows: 0, prefixOrderRemoteRows: 0, quotaMismatches: 0,
                          localFirstTableMicros: 0, prefixOrderTableMicros: 0)
            for (l, profile) in loads.enumerated() {
                let p = try Planner.planLayer(
                    loads: profile, request: PlannerRequest(numSlots: slots, topology: topo), layer: l)
                for _ in 0..<samples { measure(profile: profile, placement: p, rng: &rng, into: &row) }
            }
            row.localFirstTableMicros /= Double(loads.count * samples)
            row.prefixOrderTableMicros /= Double(loads.count * samples)
            rows.append(row)
        }
        let result = Result(source: statsJSON ?? "generated (seed \(seed))", layers: loads.count, tokensPerRank: tokens,
                            topK: topK, samples: samples, rows: rows)
        if json { try CLIOutput.printJSON(result); return }
        print(Self.report(result))
    }

    /// Routes one batch on every rank, maps it both ways and adds the totals to `row`.
    func measure(profile: [Double], placement p: Placement, rng: inout SplitMix64, into row: inout Row) {
        let routed = (0..<p.numRanks).map { _ in Self.route(profile: profile, tokens: tokens, topK: topK, rng: &rng) }
        var totals = [Int](repeating: 0, count: p.numExperts)
        var counts = [Int32](repeating: 0, count: p.numRanks * p.numExperts)
        for (r, list) in routed.enumerated() {
            for x in list { totals[Int(x)] += 1; counts[r * p.numExperts + Int(x)] += 1 }
        }
        let quotas = ReplicaSplit.quotas(expertCounts: totals, placement: p, policy: .balanced).map(Int32.init)
        let lf = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .localFirst)
        let po = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .prefixOrder)
        var received = [Int32](repeating: 0, count: p.numSlots)
        for list in lf { for s in list { received[Int(s)] += 1 } }
        row.quotaMismatches += zip(received, quotas).filter { $0 != $1 }.count
        row.pairs += routed.reduce(0) { $0 + $1.count }
        row.localFirstLocal += ReplicaSplit.localPairs(slots: lf, placement: p)
        row.prefixOrderLocal += ReplicaSplit.localPairs(slots: po, placement: p)
        row.maxLocal += ReplicaSplit.maxLocalPairs(counts: counts, quotas: quotas, placement: p)
        row.localFirstRemoteRows += Self.remoteRows(lf, topK: topK, placement: p)
        row.prefixOrderRemoteRows += Self.remoteRows(po, topK: topK, placement: p)
        let times = Self.tableMicros(counts: counts, quotas: quotas, placement: p)
        row.localFirstTableMicros += times.localFirst
        row.prefixOrderTableMicros += times.prefixOrder
    }

    /// Mean µs to build rank R/2's tables from the all-gathered counts: local-first, and prefix order including the
    /// rank-offset prefix sum the layer computed for it.
    static func tableMicros(counts: [Int32], quotas: [Int32], placement p: Placement)
        -> (localFirst: Double, prefixOrder: Double)
    {
        let rank = p.numRanks / 2, reps = 20, e = p.numExperts
        var sink = 0
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<reps {
            sink &+= Int(SlotMap.localFirst(counts: counts, quotas: quotas, placement: p, rank: rank).localCount[0])
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<reps {
            var offsets = [Int32](repeating: 0, count: e)
            for src in 0..<rank { for x in 0..<e { offsets[x] &+= counts[src * e + x] } }
            sink &+= Int(SlotMap.prefixOrder(rankOffsets: offsets, quotas: quotas, placement: p).remoteStart[0])
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        if sink == Int.min { print("") }
        return (Double(t1 - t0) / 1000 / Double(reps), Double(t2 - t1) / 1000 / Double(reps))
    }

    /// `tokens` tokens of `topK` distinct experts each, drawn in proportion to `profile`: [tokens × topK].
    static func route(profile: [Double], tokens: Int, topK: Int, rng: inout SplitMix64) -> [Int32] {
        var cum = [Double](repeating: 0, count: profile.count)
        var acc = 0.0
        for (i, w) in profile.enumerated() { acc += max(w, 0) + 1e-9; cum[i] = acc }
        var out: [Int32] = []
        out.reserveCapacity(tokens * topK)
        for _ in 0..<tokens {
            let first = out.count
            while out.count - first < topK {
                let u = rng.unitDouble() * acc
                var lo = 0, hi = cum.count - 1
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if cum[mid] > u { hi = mid } else { lo = mid + 1 }
                }
                if !out[first...].contains(Int32(lo)) { out.append(Int32(lo)) }
            }
        }
        return out
    }

    /// Distinct destination ranks other than the source, summed over every token of every rank.
    static func remoteRows(_ slots: [[Int32]], topK: Int, placement p: Placement) -> Int {
        var n = 0
        var seen = [Int](repeating: -1, count: p.numRanks)
        for (r, list) in slots.enumerated() {
            for t in 0..<(list.count / topK) {
                for k in 0..<topK {
                    let d = Int(list[t * topK + k]) / p.slotsPerRank
                    if d != r && seen[d] != t { seen[d] = t; n += 1 }
                }
            }
            for d in seen.indices { seen[d] = -1 }
        }
        return n
    }

    static func report(_ r: Result) -> String {
        var table = [["EP", "slots", "pairs", "local-first local", "prefix-order local", "bound", "remote rows/token "
            + "(prefix → local-first)", "quota mismatches",
            "tables µs (prefix → local-first)"]]
        func pct(_ a: Int, _ b: Int) -> String { String(format: "%.2f%%", 100 * Double(a) / Double(max(b, 1))) }
        for x in r.rows {
            let tokens = Double(max(x.pairs / r.topK, 1))
            table.append([
                "\(x.epSize)", "\(x.slots)", "\(x.pairs)", pct(x.localFirstLocal, x.pairs),
                pct(x.prefixOrderLocal, x.pairs), pct(x.maxLocal, x.pairs),
                String(format: "%.3f → %.3f (%.2f%%)", Double(x.prefixOrderRemoteRows) / tokens,
                       Double(x.localFirstRemoteRows) / tokens,
                       100 * (1 - Double(x.localFirstRemoteRows) / Double(max(x.prefixOrderRemoteRows, 1)))),
                "\(x.quotaMismatches)",
                String(format: "%.1f → %.1f", x.prefixOrderTableMicros, x.localFirstTableMicros),
            ])
        }
        return "loads: \(r.source), \(r.layers) layers, \(r.tokensPerRank) tokens/rank × top-\(r.topK), "
            + "\(r.samples) batches per layer; balanced planner and balanced split\n" + CLIOutput.table(table)
    }

    /// Loads summed over 50 generated steps of 58 × 256 experts of DeepSeek-V3 traffic (skew 0.8, no drift).
    func generatedLoads() throws -> [[Double]] {
        let gen = try TrafficGenerator(
            config: .deepseekV3, options: TrafficOptions(steps: 50, tokensPerStep: 8192, seed: seed, drift: 0))
        return gen.generate().summed(steps: 0..<50)
    }
}
