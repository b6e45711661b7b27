import CUDADriver
import Foundation

extension EPBenchmark {
    /// The NCCL path with the same payload: dispatch = count exchange (device, then read back: NCCL needs host
    /// counts) + pack by destination + grouped send/recv; combine = the reverse send/recv + per-token sum.
    /// Also checks the round trip (identity expert): every token must come back as (destinations) × its row.
    public func nccl(tokens: Int, comm: NCCLCommunicator<CUDAByteBuffer>) throws -> (EPBenchSample, [String]) {
        let d = try harness.upload(tokens: tokens)
        let s = ep.shape, h = harness, gpu = ep.gpu, rowBytes = s.hidden * 2
        let sendBuf = try CUDAByteBuffer(gpu, byteCount: s.maxTokens * s.ranks * rowBytes)
        let recvBuf = try CUDAByteBuffer(gpu, byteCount: ep.layout.receiveRows * rowBytes)
        try ep.computeLayout(topk: h.topk.pointer, tokens: tokens)
        var sendCounts: [Int] = [], recvCounts: [Int] = []
        let us = try time(
            [{
                try self.ep.notify()
                let info = try self.ep.info()
                recvCounts = info.recvCounts
                let sent = try self.ep.control.download(gpu).map(Int.init)
                let counts = Array(sent[(16 + 5 * s.ranks + 1 + s.experts)...].prefix(s.ranks))
                sendCounts = counts
                try self.ep.pack(x: h.x.pointer, tokens: tokens, send: sendBuf.devicePointer)
                try comm.allToAllV(send: sendBuf, sendCounts: sendCounts, recv: recvBuf, recvCounts: recvCounts,
                                   rowBytes: rowBytes)
            },
             {
                try comm.allToAllV(send: recvBuf, sendCounts: recvCounts, recv: sendBuf, recvCounts: sendCounts,
                                   rowBytes: rowBytes)
                try self.ep.unpackSum(rows: sendBuf.devicePointer, tokens: tokens, out: h.out.pointer)
            }],
            between: [])
        try ep.checkHealth()
        let got = try h.out.download(gpu, count: tokens * s.hidden)
        var failures: [String] = []
        for t in 0..<tokens where failures.count < 5 {
            let n = Float(d.destinations(t, shape: s).count)
            let row = d.row(t, hidden: s.hidden)
            if let i = (0..<s.hidden).first(where: { !EPHarness.close(BF16Bits.toFloat(got[t * s.hidden + $0]), row[$0] * n) }) {
                failures.append("rank \(ep.rank): NCCL round trip of token \(t) channel \(i) is wrong")
            }
        }
        let sent = sendCounts.reduce(0, +)
        return (EPBenchSample(
            mode: "nccl", tokens: tokens, fp8: false, dispatchMicros: us[0], combineMicros: us[1],
            dispatchBytes: CommBytes.dispatch(rows: sent, hidden: s.hidden, fp8: false),
            combineBytes: CommBytes.combine(rows: sent, hidden: s.hidden)), failures)
    }
}
