import Foundation
import Testing
import WideEPTestSupport
@testable import WideEPWorkload

/// Bytes of a hand-made safetensors file: length prefix (or `length`), header text, data.
func rawSafeTensors(header: String, data: [UInt8], length: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out = withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { Array($0) }
    out += h
    out += data
    return out
}

/// Expects `body` to throw an error whose description contains every fragment.
func expectError(_ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected an error containing \(fragments)", sourceLocation: sourceLocation)
    } catch {
        let text = "\(error)"
        for f in fragments {
            #expect(text.contains(f), "message '\(text)' lacks '\(f)'", sourceLocation: sourceLocation)
        }
    }
}

@Suite struct SafeTensorsTests {
    /// Values exactly representable in every dtype under test (small integers and halves).
    static func exactValues(count: Int, seed: UInt64, signed: Bool) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let v = Double(Int.random(in: 0...100, using: &rng))
            return signed && Bool.random(using: &rng) ? -v : v
        }
    }

    @Test(arguments: SafeTensorsDType.allCases.filter { $0 != .bool })
    func roundTripsEveryDType(dtype: SafeTensorsDType) throws {
        let dir = TemporaryDirectory()
        let signed = ![.u8, .u16, .u32, .u64].contains(dtype)
        // FP8 E4M3 holds integers exactly only up to 16; E5M2 up to 8.
        let values = Self.exactValues(count: 24, seed: 7, signed: signed).map {
            dtype == .f8E4M3 ? $0.truncatingRemainder(dividingBy: 17) : dtype == .f8E5M2 ? $0.truncatingRemainder(dividingBy: 9) : $0
        }
        var w = SafeTensorsWriter(metadata: ["model": "test", "note": "round trip"])
        try w.add(name: "x", shape: [2, 3, 4], values: values, as: dtype)
        try w.add(name: "scalar", shape: [], values: [values[0]], as: dtype)
        let path = dir.file("t.safetensors")
        try w.write(to: path)
        let f = try SafeTensorsFile(path: path)
        #expect(f.names == ["x", "scalar"])
        #expect(f.metadata == ["model": "test", "note": "round trip"])
        let t = try f.tensor(named: "x")
        #expect(t.dtype == dtype)
        #expect(t.shape == [2, 3, 4])
        #expect(t.doubles() == values)
        #expect(t.floats() == values.map(Float.init))
        #expect(try f.tensor(named: "scalar").doubles() == [values[0]])
        if dtype.isInteger { #expect(try t.int64s() == values.map { Int64($0) }) }
    }

    @Test func int64KeepsValuesBeyondDoublePrecision() throws {
        let dir = TemporaryDirectory()
        let big: [Int64] = [Int64.max, Int64.min, 9_007_199_254_740_993, -1]
        var w = SafeTensorsWriter()
        try w.add(name: "big", shape: [4], integers: big, as: .i64)
        try w.write(to: dir.file("b.safetensors"))
        #expect(try SafeTensorsFile(path: dir.file("b.safetensors")).tensor(named: "big").int64s() == big)
    }

    @Test func floatTensorsRoundTripRandomValuesBitExactly() throws {
        let dir = TemporaryDirectory()
        var rng = SplitMix64(seed: 42)
        let xs = (0..<1000).map { _ in Float.random(in: -1e6...1e6, using: &rng) }
        var w = SafeTensorsWriter()
        try w.add(name: "f32", shape: [1000], floats: xs, as: .f32)
        try w.add(name: "f64", shape: [10, 100], values: xs.map { Double($0) * 1.000001 }, as: .f64)
        try w.write(to: dir.file("r.safetensors"))
        let f = try SafeTensorsFile(path: dir.file("r.safetensors"))
        #expect(try f.tensor(named: "f32").floats() == xs)
        #expect(try f.tensor(named: "f64").doubles() == xs.map { Double($0) * 1.000001 })
    }

    @Test func headerIsPaddedAndDataAligned() throws {
        var w = SafeTensorsWriter()
        try w.add(name: "a", shape: [3], values: [1, 2, 3], as: .i32)
        let bytes = [UInt8](try w.encoded())
        let n = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        #expect(n % 8 == 0)
        #expect(bytes.count == 8 + Int(n) + 12)
    }

    @Test func writerRejectsInconsistentTensors() throws {
        var w = SafeTensorsWriter()
        try w.add(name: "a", shape: [2], values: [1, 2], as: .f32)
        expectError(["'a'", "added twice"]) { try w.add(name: "a", shape: [2], values: [1, 2], as: .f32) }
        expectError(["'b'", "3 values", "needs 4"]) { try w.add(name: "b", shape: [2, 2], values: [1, 2, 3], as: .f32) }
        expectError(["'c'", "5 bytes", "needs 8"]) { try w.add(name: "c", dtype: .f32, shape: [2], rawBytes: [1, 2, 3, 4, 5]) }
        expectError(["integer dtype"]) { try w.add(name: "d", shape: [1], integers: [1], as: .f32) }
    }

    @Test func writeLeavesNoFileWhenTheFolderIsMissing() throws {
        let dir = TemporaryDirectory()
        var w = SafeTensorsWriter()
        try w.add(name: "a", shape: [1], values: [1.0], as: .f32)
        expectError(["cannot write", "does not exist"]) { try w.write(to: dir.file("missing/x.safetensors")) }
        #expect(dir.entries.isEmpty)
    }

    // MARK: Malformed files

    @Test func rejectsTruncatedFile() {
        let dir = TemporaryDirectory()
        let p = dir.write("t.safetensors", bytes: [1, 2, 3])
        expectError(["t.safetensors", "truncated", "3 bytes"]) { _ = try SafeTensorsFile(path: p) }
    }

    @Test func rejectsHeaderLengthPastTheEnd() {
        let dir = TemporaryDirectory()
        let p = dir.write("h.safetensors", bytes: rawSafeTensors(header: "{}", data: [], length: 1000))
        expectError(["h.safetensors", "header length 1000", "2 bytes after"]) { _ = try SafeTensorsFile(path: p) }
        let z = dir.write("z.safetensors", bytes: rawSafeTensors(header: "", data: [0], length: 0))
        expectError(["header length 0"]) { _ = try SafeTensorsFile(path: z) }
    }

    @Test func rejectsHeaderThatIsNotAJSONObject() {
        let dir = TemporaryDirectory()
        let p = dir.write("j.safetensors", bytes: rawSafeTensors(header: "{not json", data: []))
        expectError(["j.safetensors", "not valid JSON"]) { _ = try SafeTensorsFile(path: p) }
        let a = dir.write("a.safetensors", bytes: rawSafeTensors(header: "[1,2]", data: []))
        expectError(["expected a JSON object"]) { _ = try SafeTensorsFile(path: a) }
    }

    @Test func rejectsOffsetsOutsideTheData() {
        let dir = TemporaryDirectory()
        let header = #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        let p = dir.write("o.safetensors", bytes: rawSafeTensors(header: header, data: [UInt8](repeating: 0, count: 8)))
        expectError(["o.safetensors", "'x'", "[0, 16]", "8 bytes"]) { _ = try SafeTensorsFile(path: p) }
    }

    @Test func rejectsSizeThatDoesNotMatchShapeAndDType() {
        let dir = TemporaryDirectory()
        let header = #"{"x":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}}"#
        let p = dir.write("s.safetensors", bytes: rawSafeTensors(header: header, data: [UInt8](repeating: 0, count: 16)))
        expectError(["'x'", "span 16 bytes", "needs 32"]) { _ = try SafeTensorsFile(path: p) }
    }

    @Test func rejectsUnknownDType() {
        let dir = TemporaryDirectory()
        let header = #"{"x":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}"#
        let p = dir.write("d.safetensors", bytes: rawSafeTensors(header: header, data: [0]))
        expectError(["'x'", "unknown dtype 'F7'", "BF16"]) { _ = try SafeTensorsFile(path: p) }
    }

    @Test func rejectsOverlappingTensors() {
        let dir = TemporaryDirectory()
        let header = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#
        let p = dir.write("v.safetensors", bytes: rawSafeTensors(header: header, data: [UInt8](repeating: 1, count: 6)))
        expectError(["'a'", "'b'", "overlap"]) { _ = try SafeTensorsFile(path: p) }
    }

    @Test func rejectsMalformedShapeAndMetadata() {
        let dir = TemporaryDirectory()
        let neg = #"{"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}"#
        let p = dir.write("n.safetensors", bytes: rawSafeTensors(header: neg, data: []))
        expectError(["'x'", "non-negative integers"]) { _ = try SafeTensorsFile(path: p) }
        let meta = #"{"__metadata__":{"k":3}}"#
        let m = dir.write("m.safetensors", bytes: rawSafeTensors(header: meta, data: []))
        expectError(["__metadata__.k must be a string"]) { _ = try SafeTensorsFile(path: m) }
    }

    @Test func namesMissingTensorAndListsTheOthers() throws {
        let dir = TemporaryDirectory()
        var w = SafeTensorsWriter()
        try w.add(name: "weight", shape: [1], values: [1.0], as: .bf16)
        try w.write(to: dir.file("w.safetensors"))
        let f = try SafeTensorsFile(path: dir.file("w.safetensors"))
        expectError(["no tensor named 'bias'", "weight"]) { _ = try f.tensor(named: "bias") }
        expectError(["cannot open", "No such file"]) { _ = try SafeTensorsFile(path: dir.file("absent.safetensors")) }
    }

    @Test func readsUnalignedF32Tensors() throws {
        // A 1-byte tensor first puts the F32 data at an odd offset.
        let header = #"{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}"#
        var data: [UInt8] = [7]
        for v: Float in [1.5, -2.25] { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
        let dir = TemporaryDirectory()
        let p = dir.write("u.safetensors", bytes: rawSafeTensors(header: header + " ", data: data))
        #expect(try SafeTensorsFile(path: p).tensor(named: "x").floats() == [1.5, -2.25])
    }
}
