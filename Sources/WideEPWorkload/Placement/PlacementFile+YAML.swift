import Foundation
import WideEPCore
import Yams

extension PlacementFile {
    /// Reads a placement file.
    ///
    /// Accepts the TensorRT-LLM `load_balancer` keys at the top level, or nested under `load_balancer:` or
    /// `moe_config: load_balancer:`; a string there is taken as the path of the YAML that holds them (relative to
    /// this file's folder), as TensorRT-LLM allows. The EP size comes from `numRanks`, or from an `ep_size` key or the
    /// `# wide-ep: ep_size=R num_experts=E` comment that `yaml()` writes; the expert count from `numExperts`, the
    /// file, or the largest id + 1.
    ///
    /// - Throws: `FileAccessError`, or `PlacementFileError` naming the file and the line or layer at fault.
    public static func load(
        path: String, numRanks: Int? = nil, numExperts: Int? = nil, allowSameRankReplicas: Bool = false
    ) throws -> PlacementFile {
        let text = String(decoding: try FileAccessError.read(path), as: UTF8.self)
        return try parse(
            yaml: text, path: path, numRanks: numRanks, numExperts: numExperts,
            allowSameRankReplicas: allowSameRankReplicas, followReference: true)
    }

    /// Parses YAML text; `path` is only used in messages and to resolve a nested file reference.
    public static func parse(
        yaml text: String, path: String = "<yaml>", numRanks: Int? = nil, numExperts: Int? = nil,
        allowSameRankReplicas: Bool = false
    ) throws -> PlacementFile {
        try parse(yaml: text, path: path, numRanks: numRanks, numExperts: numExperts,
                  allowSameRankReplicas: allowSameRankReplicas, followReference: true)
    }

    /// The YAML text: a `# wide-ep:` comment with the EP size and expert count (TensorRT-LLM's config model forbids
    /// extra keys, so they are not keys), then `num_slots`, `layer_updates_per_iter` and
    /// `initial_global_assignments` with one flow list per layer.
    public func yaml() -> String {
        var out = "# WideEP placement (TensorRT-LLM moe_config.load_balancer); "
            + "wide-ep: ep_size=\(numRanks) num_experts=\(numExperts)\n"
        out += "num_slots: \(numSlots)\nlayer_updates_per_iter: \(layerUpdatesPerIter)\ninitial_global_assignments:\n"
        for (id, p) in zip(layerIds, placements) {
            out += "  \(id): [" + p.slotExpert.map { String($0) }.joined(separator: ", ") + "]\n"
        }
        return out
    }

    /// Writes `yaml()` to `path` atomically.
    public func save(path: String) throws {
        try AtomicFile.write(yaml(), to: path)
    }

    // MARK: Parsing

    private static func parse(
        yaml text: String, path: String, numRanks: Int?, numExperts: Int?, allowSameRankReplicas: Bool,
        followReference: Bool
    ) throws -> PlacementFile {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw PlacementFileError.missingKey(path: path, key: "initial_global_assignments")
            }
            root = node
        } catch let error as PlacementFileError {
            throw error
        } catch {
            let line = String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            throw PlacementFileError.yaml(path: path, reason: line.replacingOccurrences(of: " error:", with: ""))
        }
        guard var lb = root.mapping else {
            throw PlacementFileError.wrongValue(path: path, key: "the top level", line: root.mark?.line, expected: "a mapping")
        }
        for (outer, inner) in [("moe_config", "load_balancer"), ("load_balancer", nil)] {
            guard let node = lb[outer] else { continue }
            var target = node
            if let inner {
                guard let m = node.mapping, let nested = m[inner] else {
                    throw PlacementFileError.missingKey(path: path, key: "\(outer).\(inner)")
                }
                target = nested
            }
            if case .scalar = target, let ref = target.string, followReference {
                let dir = (path as NSString).deletingLastPathComponent
                let refPath = ref.hasPrefix("/") || dir.isEmpty ? ref : dir + "/" + ref
                let refText = String(decoding: try FileAccessError.read(refPath), as: UTF8.self)
                return try parse(yaml: refText, path: refPath, numRanks: numRanks, numExperts: numExperts,
                                 allowSameRankReplicas: allowSameRankReplicas, followReference: false)
            }
            guard let m = target.mapping else {
                throw PlacementFileError.wrongValue(path: path, key: outer, line: target.mark?.line, expected: "a mapping")
            }
            lb = m
            break
        }
        func int(_ key: String) throws -> Int? {
            guard let node = lb[key] else { return nil }
            guard let x = node.int else {
                throw PlacementFileError.wrongValue(path: path, key: key, line: node.mark?.line, expected: "an integer")
            }
            return x
        }
        let header = headerValues(text)
        let fileSlots = try int("num_slots")
        let updates = try int("layer_updates_per_iter") ?? 0
        let fileRanks = try int("ep_size") ?? header["ep_size"]
        let fileExperts = try int("num_experts") ?? header["num_experts"]
        if let g = numRanks, let f = fileRanks, g != f {
            throw PlacementFileError.mismatch(path: path, what: "ep_size", file: f, given: g)
        }
        if let g = numExperts, let f = fileExperts, g != f {
            throw PlacementFileError.mismatch(path: path, what: "expert count", file: f, given: g)
        }
        guard let ranks = numRanks ?? fileRanks else { throw PlacementFileError.missingEPSize(path: path) }
        guard let assignNode = lb["initial_global_assignments"] else {
            throw PlacementFileError.missingKey(path: path, key: "initial_global_assignments")
        }
        guard let assign = assignNode.mapping, !assign.isEmpty else {
            throw PlacementFileError.wrongValue(
                path: path, key: "initial_global_assignments", line: assignNode.mark?.line,
                expected: "a non-empty mapping {layer: [expert per slot, ...]}")
        }
        var layers: [(id: Int, slots: [Int32], line: Int?)] = []
        for (k, v) in assign {
            guard let id = k.int else {
                throw PlacementFileError.wrongValue(
                    path: path, key: "initial_global_assignments key '\(k.string ?? "?")'", line: k.mark?.line,
                    expected: "an integer layer index")
            }
            let key = "initial_global_assignments[\(id)]"
            guard let seq = v.sequence else {
                throw PlacementFileError.wrongValue(path: path, key: key, line: v.mark?.line, expected: "a list of expert ids")
            }
            var slots = [Int32]()
            slots.reserveCapacity(seq.count)
            for (j, x) in seq.enumerated() {
                guard let e = x.int, let e32 = Int32(exactly: e) else {
                    throw PlacementFileError.wrongValue(
                        path: path, key: "\(key)[\(j)] '\(x.string ?? "?")'", line: x.mark?.line, expected: "an integer expert id")
                }
                slots.append(e32)
            }
            let expected = fileSlots ?? layers.first?.slots.count ?? slots.count
            guard slots.count == expected else {
                throw PlacementFileError.wrongValue(
                    path: path, key: key, line: v.mark?.line,
                    expected: "a list of \(expected) expert ids (num_slots), got \(slots.count)")
            }
            layers.append((id, slots, v.mark?.line))
        }
        layers.sort { $0.id < $1.id }
        let maxId = layers.flatMap(\.slots).max().map { Int($0) } ?? 0
        let experts = numExperts ?? fileExperts ?? (maxId + 1)
        do {
            let placements = try layers.map {
                try Placement(slotExpert: $0.slots, numExperts: experts, numRanks: ranks,
                              allowSameRankReplicas: allowSameRankReplicas, layer: $0.id)
            }
            return try PlacementFile(placements: placements, layerIds: layers.map(\.id), layerUpdatesPerIter: updates)
        } catch let error as PlacementError {
            throw PlacementFileError.placement(path: path, error)
        } catch let PlacementFileError.inconsistent(_, reason) {
            throw PlacementFileError.inconsistent(path: path, reason: reason)
        }
    }

    /// `key=value` integers from a `# … wide-ep: ep_size=R num_experts=E` comment line.
    private static func headerValues(_ text: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("#"), let r = t.range(of: "wide-ep:") else { continue }
            for token in t[r.upperBound...].split(separator: " ") {
                let kv = token.split(separator: "=")
                if kv.count == 2, let v = Int(kv[1]) { out[String(kv[0])] = v }
            }
        }
        return out
    }
}
