import Foundation
import WideEPWorkload

/// The safetensors files of one checkpoint folder and which file holds each tensor.
///
/// A sharded checkpoint lists `{"weight_map": {key: "model-00001-of-00004.safetensors", …}}` in
/// `model.safetensors.index.json`; an unsharded one is a single `model.safetensors`. Shards are opened (memory-mapped)
/// on first use and kept open; the value is not thread-safe while shards are being opened, but the opened
/// `SafeTensorsFile`s may be read from many threads.
final class CheckpointFiles {
    /// The checkpoint folder.
    let directory: String
    /// The index file, or the single weights file, that key look-ups are searched in (for messages).
    let source: String
    /// Tensor key → file name inside `directory`.
    let weightMap: [String: String]
    private var opened: [String: SafeTensorsFile] = [:]

    /// Reads the index, or opens `model.safetensors` and lists its tensors.
    init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexPath = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        let singlePath = (directory as NSString).appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: indexPath) {
            source = indexPath
            weightMap = try Self.readIndex(indexPath)
        } else if fm.fileExists(atPath: singlePath) {
            source = singlePath
            let file = try SafeTensorsFile(path: singlePath)
            opened["model.safetensors"] = file
            weightMap = Dictionary(uniqueKeysWithValues: file.names.map { ($0, "model.safetensors") })
        } else {
            throw CheckpointError.noWeights(directory: directory)
        }
    }

    /// Parses the `weight_map` of a `model.safetensors.index.json`.
    static func readIndex(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.badIndex(path: path, reason: "cannot read the file")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw CheckpointError.badIndex(path: path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let root = object as? [String: Any], let map = root["weight_map"] as? [String: Any] else {
            throw CheckpointError.badIndex(path: path, reason: "expected an object with a \"weight_map\" object")
        }
        var out: [String: String] = [:]
        for (key, value) in map {
            guard let file = value as? String, !file.isEmpty, !file.contains("/") else {
                throw CheckpointError.badIndex(
                    path: path, reason: "weight_map[\"\(key)\"] must be a file name in the same folder")
            }
            out[key] = file
        }
        return out
    }

    /// Whether the checkpoint lists tensor `key`.
    func contains(_ key: String) -> Bool { weightMap[key] != nil }

    /// Every tensor key, sorted.
    var keys: [String] { weightMap.keys.sorted() }

    /// Path of the file that holds `key`, or of the searched index/file when it is absent (for messages).
    func filePath(of key: String) -> String {
        guard let name = weightMap[key] else { return source }
        return (directory as NSString).appendingPathComponent(name)
    }

    /// Tensor `key` and the path of its file.
    ///
    /// - Throws: `CheckpointError.missingTensor` naming the key and the index or shard searched; `SafeTensorsError`
    ///   when a shard is unreadable.
    func tensor(_ key: String) throws -> (tensor: SafeTensor, path: String) {
        guard let name = weightMap[key] else { throw CheckpointError.missingTensor(key: key, file: source) }
        let path = (directory as NSString).appendingPathComponent(name)
        let file: SafeTensorsFile
        if let f = opened[name] {
            file = f
        } else {
            guard FileManager.default.fileExists(atPath: path) else {
                throw CheckpointError.missingTensor(key: key, file: "\(path) (listed in \(source), but missing)")
            }
            file = try SafeTensorsFile(path: path)
            opened[name] = file
        }
        guard file.contains(key) else { throw CheckpointError.missingTensor(key: key, file: path) }
        return (try file.tensor(named: key), path)
    }
}
