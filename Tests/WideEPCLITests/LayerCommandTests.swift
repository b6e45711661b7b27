import Foundation
import Testing
import WideEPTestSupport
import WideEPWorkload

/// `wide-ep layer` on the transformers-made checkpoints in Tests/Fixtures/checkpoints.
@Suite struct LayerCommandTests {
    /// `Tests/Fixtures/checkpoints/<name>`.
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/checkpoints/\(name)").path
    }

    /// One checkpoint per key layout, at EP 2 with 4 replica slots; the written output matches transformers.
    @Test(arguments: [("deepseek-v3", 1, 16), ("qwen2-moe", 1, 8), ("mixtral", 0, 8)])
    func layerMatchesTransformersOutput(_ name: String, _ layer: Int, _ experts: Int) throws {
        let dir = TemporaryDirectory()
        let ckpt = Self.fixture(name)
        let report = try CLI.json(
            ["layer", "--checkpoint", ckpt, "--layer", "\(layer)", "--input", ckpt + "/input.safetensors",
             "--output", "y.safetensors", "--ep-size", "2", "--num-slots", "\(experts + 4)", "--expected",
             ckpt + "/expected.safetensors", "--json"], in: dir.path)
        #expect((report.double("relativeError") ?? 1) <= 1e-4)
        #expect(report["numSlots"] as? Int == experts + 4 && report["epSize"] as? Int == 2)
        let y = try SafeTensorsFile(path: dir.file("y.safetensors")).tensor(named: "output")
        let want = try SafeTensorsFile(path: ckpt + "/expected.safetensors").tensor(named: "output")
        #expect(y.dtype == .f32 && y.shape == want.shape)
        let (a, b) = (y.floats(), want.floats())
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        let scale = b.map(abs).max() ?? 0
        #expect(worst <= 1e-4 * scale)
    }

    @Test func mismatchWithExpectedExitsOne() throws {
        let dir = TemporaryDirectory()
        let ckpt = Self.fixture("deepseek-v3")
        let r = try CLI.run(
            ["layer", "--checkpoint", ckpt, "--layer", "1", "--input", ckpt + "/input.safetensors", "--output",
             "y.safetensors", "--expected", Self.fixture("mixtral") + "/expected.safetensors"], in: dir.path)
        #expect(r.status == 1)
        #expect(r.stderr.contains("exceeds --tolerance"))
    }

    @Test func badLayerRequestsExitTwoWithOneLine() throws {
        let dir = TemporaryDirectory()
        let ds = Self.fixture("deepseek-v3")
        let base = ["layer", "--checkpoint", ds, "--input", ds + "/input.safetensors", "--output", "y.safetensors"]
        try CLI.fails(base + ["--layer", "0"], in: dir.path,
                      with: ["layer 0 is a dense layer", "first_k_dense_replace = 1", "MoE layers: 1"])
        try CLI.fails(base + ["--layer", "7"], in: dir.path, with: ["layer 7 is out of range", "0...1"])
        try CLI.fails(base + ["--layer", "1", "--ep-size", "4", "--num-slots", "18"], in: dir.path,
                      with: ["18", "ep-size 4"])
        try CLI.fails(base + ["--layer", "1", "--policy", "none", "--num-slots", "20", "--ep-size", "4"],
                      in: dir.path, with: ["policy none", "16"])
        try CLI.fails(base + ["--layer", "1", "--device", "tpu"], in: dir.path, with: ["unknown device 'tpu'"])
        try CLI.fails(base + ["--layer", "1", "--ep-size", "0"], in: dir.path, with: ["--ep-size must be >= 1"])
        #expect(!FileManager.default.fileExists(atPath: dir.file("y.safetensors")))
    }

    @Test func badFilesExitTwoWithOneLine() throws {
        let dir = TemporaryDirectory()
        let ds = Self.fixture("deepseek-v3")
        try CLI.fails(["layer", "--checkpoint", dir.file("nope"), "--layer", "1", "--input", "x", "--output", "y"],
                      in: dir.path, with: ["nope", "not a checkpoint folder"])
        let fp8Input = Self.fixture("deepseek-v3-fp8") + "/input.safetensors"
        try CLI.fails(["layer", "--checkpoint", ds, "--layer", "1", "--input", fp8Input, "--output", "y.safetensors"],
                      in: dir.path, with: ["hidden_states", "[32, 160]", "[T, 64]"])
        try CLI.fails(["layer", "--checkpoint", ds, "--layer", "1", "--input", ds + "/expected.safetensors",
                       "--output", "y.safetensors"], in: dir.path, with: ["no tensor named 'hidden_states'"])
        try CLI.fails(["layer", "--checkpoint", ds, "--layer", "1", "--input", ds + "/input.safetensors",
                       "--output", "missing/y.safetensors"], in: dir.path, with: ["missing", "does not exist"])
        // A checkpoint with one expert tensor gone: the key and the shard are named.
        let broken = dir.file("broken")
        try FileManager.default.copyItem(atPath: Self.fixture("mixtral"), toPath: broken)
        let file = try SafeTensorsFile(path: broken + "/model.safetensors")
        var w = SafeTensorsWriter()
        for t in file.tensors where t.name != "model.layers.0.block_sparse_moe.experts.3.w3.weight" {
            try w.add(name: t.name, dtype: t.dtype, shape: t.shape, rawBytes: t.bytes())
        }
        try w.write(to: broken + "/model.safetensors")
        try CLI.fails(["layer", "--checkpoint", broken, "--layer", "0", "--input", broken + "/input.safetensors",
                       "--output", "y.safetensors"], in: dir.path,
                      with: ["model.safetensors", "no tensor 'model.layers.0.block_sparse_moe.experts.3.w3.weight'"])
        #expect(!FileManager.default.fileExists(atPath: dir.file("y.safetensors")))
    }
}
