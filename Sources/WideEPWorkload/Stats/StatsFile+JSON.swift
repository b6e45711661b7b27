import Foundation

extension StatsFile {
    /// Reads the JSON form: an object with `expert_load` ([layers][experts] or [iterations][layers][experts]) and
    /// optional metadata keys `model`, `ep_size`, `step_range` ([start, end)), `workload`, `source`, `layers` (layer
    /// ids, or their count), `num_experts`, `num_layers`. Other keys (e.g. `total_routed_per_layer`) are ignored.
    static func loadJSON(path: String) throws -> StatsFile {
        let data = try FileAccessError.read(path)
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw StatsError.malformedJSON(path: path, reason: JSONNumbers.reason(error))
        }
        guard let object = root as? [String: Any] else {
            throw StatsError.malformedJSON(path: path, reason: "top level is \(JSONNumbers.kind(root)), expected an object")
        }
        guard let load = object["expert_load"] else {
            throw StatsError.missingExpertLoad(path: path, available: Array(object.keys))
        }
        let meta = try metadata(from: object, path: path)
        guard let outer = load as? [Any] else {
            throw StatsError.wrongElement(
                path: path, location: "expert_load", expected: "an array", found: JSONNumbers.kind(load))
        }
        let rank = nestingDepth(load)
        let file: StatsFile
        switch rank {
        case 2:
            file = try StatsFile(totals: try table(outer, path: path, location: "expert_load", experts: nil).0, path: path)
        case 3:
            var steps: [[[Double]]] = []
            steps.reserveCapacity(outer.count)
            var layers: Int?
            var experts: Int?
            for (t, x) in outer.enumerated() {
                let loc = "expert_load[\(t)]"
                guard let rows = x as? [Any] else {
                    throw StatsError.wrongElement(path: path, location: loc, expected: "an array", found: JSONNumbers.kind(x))
                }
                if let l = layers, rows.count != l {
                    throw StatsError.ragged(path: path, location: loc, count: rows.count, expected: l)
                }
                let (t2, e) = try table(rows, path: path, location: loc, experts: experts)
                layers = rows.count
                experts = e
                steps.append(t2)
            }
            file = try StatsFile(perStep: steps, path: path)
        default:
            throw StatsError.wrongShape(path: path, shape: shapeGuess(load))
        }
        if let l = object["num_layers"], JSONNumbers.int(l) != file.numLayers {
            throw StatsError.badMetadata(path: path, key: "num_layers", reason: "\(l) but expert_load has \(file.numLayers) layers")
        }
        if let e = object["num_experts"], JSONNumbers.int(e) != file.numExperts {
            throw StatsError.badMetadata(path: path, key: "num_experts", reason: "\(e) but expert_load has \(file.numExperts) experts")
        }
        if let n = object["layers"], let count = JSONNumbers.int(n), count != file.numLayers {
            throw StatsError.badMetadata(path: path, key: "layers", reason: "\(count) but expert_load has \(file.numLayers) layers")
        }
        var result = file
        result.metadata = meta
        try result.checkMetadata()
        return result
    }

    /// The JSON form: metadata keys first, then `expert_load` with one row of experts per line.
    func jsonData() throws -> Data {
        var meta: [String: Any] = ["format": "wideep-stats", "format_version": WideEPWorkload.formatVersion,
                                   "num_layers": numLayers, "num_experts": numExperts]
        if let m = metadata.model { meta["model"] = m }
        if let r = metadata.epSize { meta["ep_size"] = r }
        if let s = metadata.stepRange { meta["step_range"] = [s.lowerBound, s.upperBound] }
        if let w = metadata.workload { meta["workload"] = w }
        if let s = metadata.source { meta["source"] = s }
        if let ids = metadata.layerIds { meta["layers"] = ids }
        var head = String(decoding: try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys]), as: UTF8.self)
        head.removeLast()  // the closing brace; expert_load goes last
        var out = head + ",\n\"expert_load\": "
        func row(_ r: [Double]) -> String { "[" + r.map(Self.jsonNumber).joined(separator: ", ") + "]" }
        func table(_ t: [[Double]], indent: String) -> String {
            "[\n" + t.map { indent + "  " + row($0) }.joined(separator: ",\n") + "\n" + indent + "]"
        }
        if let perStep {
            out += "[\n" + perStep.map { "  " + table($0, indent: "  ") }.joined(separator: ",\n") + "\n]"
        } else {
            out += table(totals, indent: "")
        }
        out += "\n}\n"
        return Data(out.utf8)
    }

    /// Integers without a fractional part, other values in Swift's shortest round-trip form (valid JSON).
    static func jsonNumber(_ x: Double) -> String {
        if x == x.rounded() && abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }

    // MARK: Parsing helpers

    /// Parses a [layers][experts] JSON table, checking that rows have `experts` entries (or the first row's count).
    private static func table(
        _ rows: [Any], path: String, location: String, experts: Int?
    ) throws -> ([[Double]], Int) {
        guard !rows.isEmpty else { throw StatsError.wrongShape(path: path, shape: [0]) }
        var out: [[Double]] = []
        out.reserveCapacity(rows.count)
        var e = experts
        for (i, r) in rows.enumerated() {
            let loc = "\(location)[\(i)]"
            guard let values = r as? [Any] else {
                throw StatsError.wrongElement(path: path, location: loc, expected: "an array of counts", found: JSONNumbers.kind(r))
            }
            if let e, values.count != e {
                throw StatsError.ragged(path: path, location: loc, count: values.count, expected: e)
            }
            e = values.count
            var row = [Double](repeating: 0, count: values.count)
            for (j, v) in values.enumerated() {
                guard let x = JSONNumbers.double(v) else {
                    throw StatsError.wrongElement(path: path, location: "\(loc)[\(j)]", expected: "a number", found: JSONNumbers.kind(v))
                }
                guard x.isFinite && x >= 0 else { throw StatsError.badCount(path: path, location: "\(loc)[\(j)]", value: x) }
                row[j] = x
            }
            out.append(row)
        }
        return (out, e ?? 0)
    }

    /// Depth of nested arrays along the first elements (2 for [[1, 2]], 3 for [[[1]]]).
    private static func nestingDepth(_ x: Any) -> Int {
        var depth = 0
        var cur: Any = x
        while let a = cur as? [Any] {
            depth += 1
            guard let f = a.first else { break }
            cur = f
        }
        return depth
    }

    private static func shapeGuess(_ x: Any) -> [Int] {
        var shape: [Int] = []
        var cur: Any = x
        while let a = cur as? [Any] {
            shape.append(a.count)
            guard let f = a.first else { break }
            cur = f
        }
        return shape
    }

    private static func metadata(from o: [String: Any], path: String) throws -> StatsMetadata {
        func string(_ key: String) throws -> String? {
            guard let v = o[key], !(v is NSNull) else { return nil }
            if let s = v as? String { return s }
            if key == "source", JSONSerialization.isValidJSONObject(v),
               let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]) {
                return String(decoding: d, as: UTF8.self)
            }
            throw StatsError.badMetadata(path: path, key: key, reason: "is \(JSONNumbers.kind(v)), expected a string")
        }
        var m = StatsMetadata()
        m.model = try string("model")
        m.workload = try string("workload")
        m.source = try string("source")
        if let v = o["ep_size"], !(v is NSNull) {
            guard let r = JSONNumbers.int(v) else {
                throw StatsError.badMetadata(path: path, key: "ep_size", reason: "is \(JSONNumbers.kind(v)), expected an integer")
            }
            m.epSize = r
        }
        if let v = o["step_range"], !(v is NSNull) {
            guard let a = v as? [Any], a.count == 2, let lo = JSONNumbers.int(a[0]), let hi = JSONNumbers.int(a[1]), lo <= hi else {
                throw StatsError.badMetadata(path: path, key: "step_range", reason: "expected [start, end] integers with start <= end")
            }
            m.stepRange = lo..<hi
        }
        if let v = o["layers"] as? [Any] {
            m.layerIds = try v.enumerated().map { i, x in
                guard let id = JSONNumbers.int(x) else {
                    throw StatsError.badMetadata(path: path, key: "layers[\(i)]", reason: "is \(JSONNumbers.kind(x)), expected an integer layer id")
                }
                return id
            }
        }
        return m
    }
}
