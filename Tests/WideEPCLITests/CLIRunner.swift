import Foundation
import Testing

/// Runs the built `wide-ep` executable as a subprocess.
///
/// The binary sits in the same build products folder as the test bundle (`swift test` builds it because this test
/// target depends on the executable target). `WIDEEP_BIN` overrides the lookup.
enum CLI {
    /// Outcome of one run.
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// Non-empty stderr lines.
        var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    }

    /// Absolute path of `wide-ep`.
    static let binary: String = locate()

    private static func locate() -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["WIDEEP_BIN"], fm.isExecutableFile(atPath: env) { return env }
        var dirs: [URL] = []
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") { dirs.append(b.bundleURL.deletingLastPathComponent()) }
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for dir in dirs {
            var d = dir
            for _ in 0..<3 {
                let candidate = d.appendingPathComponent("wide-ep").path
                if fm.isExecutableFile(atPath: candidate) { return candidate }
                d = d.deletingLastPathComponent()
            }
        }
        // Last resort: the default build folder of the package this file belongs to.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/wide-ep").path
    }

    /// Runs `wide-ep args…` in `directory`, capturing stdout and stderr through files (no pipe deadlocks).
    static func run(_ args: [String], in directory: String) throws -> Result {
        let out = directory + "/.stdout-\(UInt32.random(in: 0...UInt32.max))"
        let err = directory + "/.stderr-\(UInt32.random(in: 0...UInt32.max))"
        precondition(FileManager.default.createFile(atPath: out, contents: nil), "cannot create \(out)")
        precondition(FileManager.default.createFile(atPath: err, contents: nil), "cannot create \(err)")
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: err)
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        p.standardOutput = outHandle
        p.standardError = errHandle
        try p.run()
        p.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        return Result(
            status: p.terminationStatus,
            stdout: String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self),
            stderr: String(decoding: FileManager.default.contents(atPath: err) ?? Data(), as: UTF8.self))
    }

    /// Runs and expects success; returns stdout.
    @discardableResult
    static func ok(_ args: [String], in directory: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try run(args, in: directory)
        #expect(r.status == 0, "wide-ep \(args.joined(separator: " ")) failed: \(r.stderr)", sourceLocation: sourceLocation)
        return r.stdout
    }

    /// Runs and decodes stdout as a JSON object.
    static func json(_ args: [String], in directory: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let out = try ok(args, in: directory, sourceLocation: sourceLocation)
        guard let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] else {
            Issue.record("stdout is not a JSON object: \(out.prefix(200))", sourceLocation: sourceLocation)
            return [:]
        }
        return obj
    }

    /// Expects exit code 2 with exactly one stderr line that contains every fragment.
    static func fails(
        _ args: [String], in directory: String, with fragments: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let r = try run(args, in: directory)
        #expect(r.status == 2, "exit status \(r.status) for \(args)", sourceLocation: sourceLocation)
        #expect(r.stderrLines.count == 1, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        let line = r.stderrLines.first ?? ""
        #expect(line.hasPrefix("wide-ep: error: "), "stderr: \(line)", sourceLocation: sourceLocation)
        for f in fragments {
            #expect(line.contains(f), "stderr '\(line)' lacks '\(f)'", sourceLocation: sourceLocation)
        }
    }
}

extension Dictionary where Key == String, Value == Any {
    /// A number at `key` (JSON numbers decode as NSNumber).
    func double(_ key: String) -> Double? { (self[key] as? NSNumber)?.doubleValue }
}
