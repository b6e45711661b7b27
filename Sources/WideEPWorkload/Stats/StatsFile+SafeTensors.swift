import Foundation

extension StatsFile {
    /// Safetensors tensor name of the counts.
    public static let tensorName = "expert_load"

    /// Reads the safetensors form: tensor `expert_load` of rank 2 or 3 in any integer or float dtype, with optional
    /// `__metadata__` keys `model`, `ep_size`, `step_range` ("start:end"), `workload`, `source`, `layers`
    /// (comma-separated layer ids).
    static func loadSafeTensors(path: String) throws -> StatsFile {
        let file = try SafeTensorsFile(path: path)
        guard file.contains(tensorName) else {
            throw StatsError.missingExpertLoad(path: path, available: file.names)
        }
        let t = try file.tensor(named: tensorName)
        guard t.dtype != .bool else { throw StatsError.wrongDType(path: path, dtype: t.dtype.rawValue) }
        guard t.shape.count == 2 || t.shape.count == 3, t.shape.allSatisfy({ $0 >= 1 }) else {
            throw StatsError.wrongShape(path: path, shape: t.shape)
        }
        let meta = try metadata(from: file.metadata, path: path)
        let flat = t.doubles()
        let e = t.shape[t.shape.count - 1]
        let l = t.shape[t.shape.count - 2]
        let steps = t.shape.count == 3 ? t.shape[0] : 1
        var out = [[[Double]]]()
        out.reserveCapacity(steps)
        for s in 0..<steps {
            var table = [[Double]]()
            table.reserveCapacity(l)
            for i in 0..<l {
                let base = (s * l + i) * e
                let row = Array(flat[base..<(base + e)])
                if let j = row.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
                    let loc = t.shape.count == 3 ? "expert_load[\(s)][\(i)][\(j)]" : "expert_load[\(i)][\(j)]"
                    throw StatsError.badCount(path: path, location: loc, value: row[j])
                }
                table.append(row)
            }
            out.append(table)
        }
        if t.shape.count == 3 { return try StatsFile(perStep: out, metadata: meta, path: path) }
        return try StatsFile(totals: out[0], metadata: meta, path: path)
    }

    /// The safetensors form; `dtype` defaults to I64 when every count is an integer below 2^53, else F64.
    func safeTensorsData(dtype: SafeTensorsDType? = nil) throws -> Data {
        let tables = perStep ?? [totals]
        var flat: [Double] = []
        flat.reserveCapacity(tables.count * numLayers * numExperts)
        for t in tables { for row in t { flat += row } }
        let integral = flat.allSatisfy { $0 == $0.rounded() && $0 < 9_007_199_254_740_992 }
        let chosen = dtype ?? (integral ? .i64 : .f64)
        guard chosen != .bool else {
            throw SafeTensorsError.invalidTensor(name: Self.tensorName, reason: "BOOL cannot hold counts")
        }
        var meta: [String: String] = ["format": "wideep-stats", "format_version": "\(WideEPWorkload.formatVersion)"]
        if let m = metadata.model { meta["model"] = m }
        if let r = metadata.epSize { meta["ep_size"] = "\(r)" }
        if let s = metadata.stepRange { meta["step_range"] = "\(s.lowerBound):\(s.upperBound)" }
        if let w = metadata.workload { meta["workload"] = w }
        if let s = metadata.source { meta["source"] = s }
        if let ids = metadata.layerIds { meta["layers"] = ids.map(String.init).joined(separator: ",") }
        var writer = SafeTensorsWriter(metadata: meta)
        let shape = perStep == nil ? [numLayers, numExperts] : [tables.count, numLayers, numExperts]
        try writer.add(name: Self.tensorName, shape: shape, values: flat, as: chosen)
        return try writer.encoded()
    }

    private static func metadata(from m: [String: String], path: String) throws -> StatsMetadata {
        var out = StatsMetadata(model: m["model"], workload: m["workload"], source: m["source"])
        if let r = m["ep_size"] {
            guard let x = Int(r) else {
                throw StatsError.badMetadata(path: path, key: "ep_size", reason: "'\(r)' is not an integer")
            }
            out.epSize = x
        }
        if let s = m["step_range"] {
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let lo = Int(parts[0]), let hi = Int(parts[1]), lo <= hi else {
                throw StatsError.badMetadata(path: path, key: "step_range", reason: "'\(s)' is not start:end with start <= end")
            }
            out.stepRange = lo..<hi
        }
        if let s = m["layers"] {
            out.layerIds = try s.split(separator: ",").map {
                guard let id = Int($0.trimmingCharacters(in: .whitespaces)) else {
                    throw StatsError.badMetadata(path: path, key: "layers", reason: "'\($0)' is not an integer layer id")
                }
                return id
            }
        }
        return out
    }
}
