import Foundation
import Testing
import WideEPTestSupport
import WideEPWorkload

/// `wide-ep launch -- run`: one process per rank (CPU ranks talking through the TCP store), compared with the
/// single-process run, plus failure handling. Tiny model so each job takes a second or two.
@Suite struct LaunchRunTests {
    static let tiny = [
        "--set", "numExperts=8", "--set", "numGroups=2", "--set", "topKGroup=1", "--set", "topK=2",
        "--set", "hiddenSize=32", "--set", "moeIntermediateSize=16", "--set", "numMoELayers=2",
        "--ep-size", "2", "--steps", "12", "--tokens-per-step", "64", "--rebalance-interval", "3", "--threads", "2",
    ]

    @Test func twoProcessRunMatchesTheSingleProcessRun() throws {
        let dir = TemporaryDirectory()
        let flags = Self.tiny + ["--verify-every", "3", "--seed", "7", "--json"]
        let single = try CLI.json(["run"] + flags, in: dir.path)
        let multi = try CLI.json(["launch", "--nproc-per-node", "2", "--", "run"] + flags, in: dir.path)
        #expect(single["processes"] as? Int == 1)
        #expect(multi["processes"] as? Int == 2)
        #expect(multi["verificationMismatches"] as? Int == 0)
        #expect(multi["verifications"] as? Int == 8)
        #expect(multi["staleSlotObservations"] as? Int == 0)
        #expect(multi["tokens"] as? Int == 12 * 64)
        // Same traffic and tokens → same routing → same plans at the same steps → same metrics.
        #expect((multi["rebalances"] as? Int ?? 0) >= 1)
        #expect(multi["rebalances"] as? Int == single["rebalances"] as? Int)
        #expect(multi["slotsMoved"] as? Int == single["slotsMoved"] as? Int)
        for key in ["imbalanceMean", "imbalanceP99", "balancedness", "dispatchRowsPerToken"] {
            let a = try #require(single.double(key)), b = try #require(multi.double(key))
            #expect(abs(a - b) <= 1e-9, "\(key): single \(a), two processes \(b)")
        }
    }

    @Test func onlyRankZeroPrintsTheSummary() throws {
        let dir = TemporaryDirectory()
        let out = try CLI.ok(["launch", "--nproc-per-node", "2", "--", "run"] + Self.tiny + ["--steps", "3"],
                             in: dir.path)
        #expect(out.components(separatedBy: "imbalance mean").count == 2, "one summary table expected:\n\(out)")
        #expect(out.contains("EP2 (2 processes)"))
    }

    @Test func killedRankEndsTheJobWithAClearMessage() throws {
        let dir = TemporaryDirectory()
        let start = Date()
        let r = try CLI.run(
            ["launch", "--nproc-per-node", "2", "--", "run"] + Self.tiny + ["--fail-rank", "1", "--fail-at-step", "4"],
            in: dir.path)
        // A hang guard, not a timing: a dead peer must end the job instead of leaving rank 0 waiting.
        #expect(Date().timeIntervalSince(start) < 60)
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 1 was killed by signal 9"), "stderr: \(r.stderr)")
        // (Whether rank 0's own "stopping" line appears first is a race with launch stopping it, so it is not checked.)
        #expect(!r.stdout.contains("imbalance mean"))
    }

    @Test func epSizeMustMatchTheLaunchedRanks() throws {
        let dir = TemporaryDirectory()
        let r = try CLI.run(["launch", "--nproc-per-node", "2", "--", "run"] + Self.tiny + ["--ep-size", "3"],
                            in: dir.path)
        #expect(r.status == 2)
        #expect(r.stderr.contains("--ep-size 3 does not match the 2 launched ranks"), "stderr: \(r.stderr)")
    }

    @Test func twoProcessLayerWritesTheSingleProcessOutput() throws {
        let dir = TemporaryDirectory()
        let ckpt = LayerCommandTests.fixture("deepseek-v3")
        let flags = ["layer", "--checkpoint", ckpt, "--layer", "1", "--input", ckpt + "/input.safetensors",
                     "--ep-size", "2", "--num-slots", "20", "--expected", ckpt + "/expected.safetensors", "--json"]
        let single = try CLI.json(flags + ["--output", "one.safetensors"], in: dir.path)
        let multi = try CLI.json(["launch", "--nproc-per-node", "2", "--"] + flags + ["--output", "two.safetensors"],
                                 in: dir.path)
        #expect((multi.double("relativeError") ?? 1) <= 1e-4)
        #expect(multi.double("imbalance") == single.double("imbalance"))
        let a = try SafeTensorsFile(path: dir.file("one.safetensors")).tensor(named: "output").floats()
        let b = try SafeTensorsFile(path: dir.file("two.safetensors")).tensor(named: "output").floats()
        #expect(a.count > 0 && a == b)
    }

    @Test func rendezvousCheckFailsWhenARankDies() throws {
        let dir = TemporaryDirectory()
        let start = Date()
        let r = try CLI.run(
            ["launch", "--nproc-per-node", "3", "--", "rendezvous-check", "--fail-rank", "1", "--fail-after", "1"],
            in: dir.path)
        #expect(Date().timeIntervalSince(start) < 60)
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 1 was killed by signal 9"), "stderr: \(r.stderr)")
        let ok = try CLI.run(["launch", "--nproc-per-node", "3", "--", "rendezvous-check"], in: dir.path)
        #expect(ok.status == 0, "stderr: \(ok.stderr)")
        #expect(ok.stdout.contains("3 barrier rounds passed on 3 ranks"))
    }

    @Test func aStoppedLauncherStopsItsRanks() throws {
        let dir = TemporaryDirectory()
        let err = dir.path + "/launch.stderr"
        precondition(FileManager.default.createFile(atPath: err, contents: nil), "cannot create \(err)")
        let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        // A round count no other process uses, to find this job's ranks in /proc.
        let marker = "\(900_000 + Int(getpid() % 90_000))"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["launch", "--nproc-per-node", "2", "--grace-seconds", "5", "--", "rendezvous-check",
                       "--rounds", marker, "--pause", "0.05"]
        p.currentDirectoryURL = URL(fileURLWithPath: dir.path)
        p.standardError = errHandle
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        func ranks() -> [String] {
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return pids.filter { pid in
                guard Int(pid) != nil, pid != "\(p.processIdentifier)",
                    let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
                else { return false }
                let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return args.contains("rendezvous-check") && args.contains(marker)
            }
        }
        // Hang guards, not timings: wait (up to 60 s) until both ranks run, then stop the launcher like a scheduler.
        let start = Date()
        while ranks().count < 2 && Date().timeIntervalSince(start) < 60 { usleep(50_000) }
        #expect(ranks().count == 2, "the two ranks never started")
        kill(p.processIdentifier, SIGTERM)
        let stopped = Date()
        while p.isRunning && Date().timeIntervalSince(stopped) < 60 { usleep(50_000) }
        #expect(!p.isRunning, "launch ignored SIGTERM")
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        try? errHandle.close()
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(p.terminationStatus == 128 + SIGTERM, "stderr: \(stderr)")
        #expect(stderr.contains("received signal \(SIGTERM); stopping the ranks"), "stderr: \(stderr)")
        // No orphans: the ranks ended with the launcher.
        #expect(ranks().isEmpty, "ranks still running after launch exited: \(ranks())")
    }
}
