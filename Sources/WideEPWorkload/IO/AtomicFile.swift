import Foundation

/// Writes files through a temporary file in the same folder and a rename, so readers never see a half-written file
/// and a failure leaves nothing behind.
public enum AtomicFile {
    /// Writes `data` to `path` atomically.
    ///
    /// - Throws: `FileAccessError.cannotWrite` naming the path and the OS reason.
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        // A device or pipe (/dev/null, /dev/stdout, a FIFO) is written in place: renaming over it would replace the
        // device node itself with a regular file.
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG && (st.st_mode & S_IFMT) != S_IFDIR {
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw FileAccessError.cannotWrite(path: path, reason: "cannot open it for writing")
            }
            defer { try? handle.close() }
            handle.write(data)
            return
        }
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw FileAccessError.cannotWrite(path: path, reason: "folder \(dir) does not exist")
        }
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try data.write(to: URL(fileURLWithPath: tmp))
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw FileAccessError.cannotWrite(path: path, reason: error.localizedDescription)
        }
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: tmp)
            throw FileAccessError.cannotWrite(path: path, reason: reason)
        }
    }

    /// Writes UTF-8 `text` to `path` atomically.
    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }
}
