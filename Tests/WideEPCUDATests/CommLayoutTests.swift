import CUDADriver
import Foundation
import Testing
@testable import WideEPCUDA

@Suite("Multi-GPU communication: host layout and byte counting")
struct CommLayoutTests {
    struct Rng {
        var s: UInt64
        mutating func next(_ n: Int) -> Int {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((s >> 33) % UInt64(n))
        }
    }

    @Test func receiveOffsetsMatchPackingRowsOneByOne() throws {
        var rng = Rng(s: 7)
        for r in 1...6 {
            let counts = (0..<r).map { _ in (0..<r).map { _ in rng.next(5) } }
            let offsets = try CommLayout.receiveOffsets(counts: counts)
            // Reference: append each source's rows to each receiver's list in rank order, note where each block starts.
            for d in 0..<r {
                var list: [Int] = []
                for s in 0..<r {
                    #expect(offsets[s][d] == list.count)
                    list += [Int](repeating: s, count: counts[s][d])
                }
                #expect(try CommLayout.receiveTotals(counts: counts)[d] == list.count)
            }
        }
    }

    @Test func expertMajorOffsetsAreContiguousPerExpertThenSource() throws {
        var rng = Rng(s: 11)
        let counts = (0..<3).map { _ in (0..<4).map { _ in rng.next(4) } }
        let off = try CommLayout.expertMajorOffsets(counts: counts)
        var cursor = 0
        for e in 0..<4 {
            for s in 0..<3 {
                #expect(off[s][e] == cursor)
                cursor += counts[s][e]
            }
        }
        #expect(throws: CommLayoutError.self) { try CommLayout.expertMajorOffsets(counts: [[1, 2], [3]]) }
    }

    @Test func malformedMatricesAreRejectedWithWhereAndWhat() {
        #expect(throws: CommLayoutError.self) { try CommLayout.receiveOffsets(counts: [[1, 2], [3]]) }
        do {
            _ = try CommLayout.receiveOffsets(counts: [[1, -2], [0, 0]])
            Issue.record("negative count accepted")
        } catch {
            #expect("\(error)".contains("[0][1]"))
        }
    }

    @Test func sendCountsDeduplicatePerDestinationRank() {
        // Token 0: experts 0,1 (rank 0) and 5 (rank 1); token 1: experts 2,3 (rank 0 twice); token 2: none (−1).
        let topk: [Int32] = [0, 1, 5, 2, 3, -1, -1, -1, -1]
        #expect(CommLayout.sendCounts(topk: topk, topK: 3, expertsPerRank: 4, numRanks: 2) == [2, 1])
        #expect(CommLayout.destinationRanks(experts: [7, 0, 4] as [Int32], expertsPerRank: 4) == [0, 1])
        #expect(CommLayout.sendOffsets(counts: [3, 0, 2]) == [0, 3, 3])
    }

    @Test func bytesAreCountedAsDeepEPCountsThem() {
        #expect(CommBytes.dispatch(rows: 1, hidden: 7168, fp8: false) == 14336)
        #expect(CommBytes.dispatch(rows: 2, hidden: 7168, fp8: true) == 2 * (7168 + 224))
        #expect(CommBytes.combine(rows: 3, hidden: 7168) == 3 * 14336)
        #expect(abs(CommBytes.gigabytesPerSecond(bytes: 1_000_000, microseconds: 10) - 100) < 1e-9)
    }

    @Test func symmetricBufferRegionsAreAlignedAndDisjoint() throws {
        let shape = EPShape(ranks: 2, hidden: 7168, experts: 256, topK: 8, maxTokens: 4096, lowLatencyTokens: 128)
        let l = try EPBufferLayout(shape: shape)
        #expect(l.offsets.count == EPBufferLayout.Region.allCases.count)
        #expect(l.offsets.allSatisfy { $0 % 256 == 0 })
        #expect(zip(l.offsets, l.offsets.dropFirst()).allSatisfy { $0 < $1 } || shape.lowLatencyTokens == 0)
        #expect(l.offset(.receive) >= 8 * 2 * 4 + 2 * 2 * 2 * 4)
        #expect(l.offset(.meta) - l.offset(.receive) >= 2 * 4096 * 14336)
        #expect(l.totalBytes - l.offset(.lowLatencyCombine) >= 128 * 8 * 7168 * 2)
        #expect(shape.rowStride(fp8: true) == 7392 && shape.rowStride(fp8: false) == 14336)
    }

    @Test func invalidShapesSayWhatIsValid() {
        let bad = [
            EPShape(ranks: 0, hidden: 128, experts: 8, topK: 2, maxTokens: 1, lowLatencyTokens: 1),
            EPShape(ranks: 2, hidden: 100, experts: 8, topK: 2, maxTokens: 1, lowLatencyTokens: 1),
            EPShape(ranks: 3, hidden: 128, experts: 8, topK: 2, maxTokens: 1, lowLatencyTokens: 1),
            EPShape(ranks: 2, hidden: 128, experts: 8, topK: 9, maxTokens: 1, lowLatencyTokens: 1),
        ]
        for s in bad { #expect(throws: CommLayoutError.self) { try s.validate() } }
    }

    @Test func kernelSourceDefinesEveryLaunchedKernel() {
        let src = EPKernelSource.module
        // Every preprocessor directive starts a line (a join without a newline once produced "}#ifndef FP8").
        for line in src.split(separator: "\n") where line.contains("#if") || line.contains("#endif") || line.contains("#define") {
            #expect(line.trimmingCharacters(in: .whitespaces).hasPrefix("#"), "directive inside a line: \(line)")
        }
        for k in ["ep_barrier", "ep_signal", "ep_wait", "ep_notify", "ep_layout", "ep_fake_expert", "ep_dispatch",
                  "ep_combine", "ep_combine_recv", "ep_ll_dispatch", "ep_ll_combine", "ep_ll_combine_recv", "ep_pack",
                  "ep_unpack_sum"] {
            #expect(src.contains("extern \"C\" __global__ void") && src.contains(" \(k)("), "kernel \(k) missing")
        }
        // The flag protocol uses sys-scope ordering, never a plain volatile flag.
        #expect(src.contains("ld.acquire.sys") && src.contains("fence.acq_rel.sys") && src.contains("clock64()"))
    }

    /// NVRTC needs no GPU: where it is installed (the GPU machine, or WIDEEP_NVRTC_LIB), compile the module exactly
    /// as `NVLinkEP` does, in every variant, for sm_90. Skipped where NVRTC is absent (CI).
    @Test func kernelModuleCompilesWithNVRTCWhereAvailable() throws {
        guard let nvrtc = try? CUDADriver.CUDA.nvrtc() else { return }
        for fp8 in ["0", "1"] {
            for portable in ["0", "1"] {
                let key = KernelKey(name: "ep_comm.cu", source: EPKernelSource.module,
                                    defines: ["FP8": fp8, "EP_PORTABLE": portable], architecture: "sm_90")
                let cubin = try nvrtc.compile(source: key.source, name: key.name, options: key.options(includeDirectory: nil))
                #expect(cubin.count > 1000)
            }
        }
    }
}
