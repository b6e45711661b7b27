import CUDADriver
import Foundation
import WideEPRuntime

extension NVLinkEP {
    /// Normal-mode dispatch of `tokens` bf16 rows `x` [tokens, H] with their top-k experts and weights
    /// ([tokens, K]): count exchange, one write per (token, destination rank), then a wait for every rank.
    /// Requires `computeLayout` for the same `topk` first. Received rows land in the `.receive` region (rows of
    /// each source contiguous, sources in rank order; FP8: codes then scales per row), metadata in `.meta`.
    public func dispatch(x: CUdeviceptr, topk: CUdeviceptr, weights: CUdeviceptr, tokens: Int, fp8: Bool) throws {
        try checkTokens(tokens, limit: shape.maxTokens, mode: "normal")
        try notify()
        let blocks = max(1, min(normalBlocks, (tokens + 7) / 8))
        try gpu.launch(
            try function("ep_dispatch", fp8: fp8), grid: (blocks, 1, 1), block: (256, 1, 1),
            args: base + [.int(tokens), .int(shape.hidden), .int(shape.topK), .int(shape.expertsPerRank), .ptr(x),
                          .ptr(topk), .ptr(weights), .ptr(positions.pointer), .ptr(infoAddress),
                          .int(layout.rowStride), .ptr(epochsAddress), .ptr(ticketsAddress)], name: "ep_dispatch")
        try wait(kind: 1)
    }

    /// Normal-mode combine: sends each received row of `y` (bf16 [received rows, H], the owner's weighted expert sum)
    /// back to its source, and sums each token's returned rows into `out` (bf16 [tokens, H]).
    public func combine(y: CUdeviceptr, tokens: Int, out: CUdeviceptr) throws {
        try checkTokens(tokens, limit: shape.maxTokens, mode: "normal")
        let blocks = max(1, normalBlocks)
        try gpu.launch(
            try function("ep_combine"), grid: (blocks, 1, 1), block: (256, 1, 1),
            args: base + [.int(shape.hidden), .ptr(y), .ptr(infoAddress), .ptr(epochsAddress), .ptr(ticketsAddress)],
            name: "ep_combine")
        try gpu.launch(
            try function("ep_combine_recv"), grid: (max(1, min(normalBlocks, (tokens + 7) / 8)), 1, 1),
            block: (256, 1, 1),
            args: base + [.int(tokens), .int(shape.hidden), .ptr(positions.pointer), .ptr(infoAddress), .ptr(out),
                          .ptr(epochsAddress), .i64(timeoutCycles), .ptr(diagAddress)], name: "ep_combine_recv")
    }

    /// Low-latency dispatch (no count exchange, no host sync, capturable): entries land expert-major in
    /// `.lowLatencyReceive` `[E/R][R][cap]` with (token, k) headers, counts in `.lowLatencyCounts` `[E/R][R]`.
    public func dispatchLowLatency(x: CUdeviceptr, topk: CUdeviceptr, tokens: Int, fp8: Bool) throws {
        try checkTokens(tokens, limit: shape.lowLatencyTokens, mode: "low-latency")
        try gpu.launch(
            try function("ep_ll_dispatch", fp8: fp8),
            grid: (max(1, min(8 * gpu.multiprocessors, (tokens * shape.topK + 7) / 8)), 1, 1), block: (256, 1, 1),
            args: base + [.int(tokens), .int(shape.hidden), .int(shape.topK), .int(shape.expertsPerRank),
                          .int(shape.lowLatencyTokens), .ptr(x), .ptr(topk), .int(layout.rowStride),
                          .ptr(countersAddress), .ptr(epochsAddress), .ptr(ticketsAddress)], name: "ep_ll_dispatch")
        try wait(kind: 3)
    }

    /// Low-latency combine: `y` holds the expert outputs in the receive layout (bf16 `[E/R][R][cap][H]`); each goes
    /// back to its source's (token, k) slot, and the source writes `out[t] = Σ_k w[t,k] · y(t,k)` (bf16 [tokens, H]).
    public func combineLowLatency(
        y: CUdeviceptr, topk: CUdeviceptr, weights: CUdeviceptr, tokens: Int, out: CUdeviceptr
    ) throws {
        try checkTokens(tokens, limit: shape.lowLatencyTokens, mode: "low-latency")
        let items = shape.expertsPerRank * shape.ranks * shape.lowLatencyTokens
        try gpu.launch(
            try function("ep_ll_combine"), grid: (max(1, min(gpu.multiprocessors, (items + 7) / 8)), 1, 1),
            block: (256, 1, 1),
            args: base + [.int(shape.hidden), .int(shape.topK), .int(shape.expertsPerRank),
                          .int(shape.lowLatencyTokens), .ptr(y), .ptr(epochsAddress), .ptr(ticketsAddress)],
            name: "ep_ll_combine")
        try gpu.launch(
            try function("ep_ll_combine_recv"), grid: (max(1, (tokens + 7) / 8), 1, 1), block: (256, 1, 1),
            args: base + [.int(tokens), .int(shape.hidden), .int(shape.topK), .ptr(topk), .ptr(weights), .ptr(out),
                          .ptr(epochsAddress), .i64(timeoutCycles), .ptr(diagAddress)], name: "ep_ll_combine_recv")
    }

    /// The stand-in expert of the checks and benchmarks: `y[r] = bf16(f(r) · dequant(rows[r]))` with
    /// f(r) = 1 + (r / group + salt) mod 7, over `count` rows of `stride` bytes.
    public func fakeExpert(rows: CUdeviceptr, stride: Int, count: Int, fp8: Bool, group: Int, salt: Int,
                           y: CUdeviceptr) throws {
        try gpu.launch(
            try function("ep_fake_expert"), grid: (max(1, min(4 * gpu.multiprocessors, (count + 7) / 8)), 1, 1),
            block: (256, 1, 1),
            args: [.ptr(rows), .int(stride), .int(count), .int(shape.hidden), .int(fp8 ? 1 : 0), .int(group),
                   .int(salt), .ptr(y)], name: "ep_fake_expert")
    }

    /// Packs send rows by destination for the NCCL path (needs `computeLayout` and `notify`).
    public func pack(x: CUdeviceptr, tokens: Int, send: CUdeviceptr) throws {
        try gpu.launch(
            try function("ep_pack"), grid: (max(1, min(normalBlocks, (tokens + 7) / 8)), 1, 1), block: (256, 1, 1),
            args: [.int(shape.ranks), .int(tokens), .int(shape.hidden), .ptr(x), .ptr(positions.pointer),
                   .ptr(infoAddress + UInt64(16 * shape.ranks)), .ptr(send)], name: "ep_pack")
    }

    /// Sums the returned rows per token for the NCCL path.
    public func unpackSum(rows: CUdeviceptr, tokens: Int, out: CUdeviceptr) throws {
        try gpu.launch(
            try function("ep_unpack_sum"), grid: (max(1, min(normalBlocks, (tokens + 7) / 8)), 1, 1),
            block: (256, 1, 1),
            args: [.int(shape.ranks), .int(tokens), .int(shape.hidden), .ptr(rows), .ptr(positions.pointer),
                   .ptr(infoAddress + UInt64(16 * shape.ranks)), .ptr(out)], name: "ep_unpack_sum")
    }

    /// The `info` words after `notify`: send bases, receive bases, receive counts, source prefixes, send prefixes
    /// (each [R]) and the received total (synchronises).
    public func info() throws -> (sendBase: [Int], recvBase: [Int], recvCounts: [Int], sendPrefix: [Int], total: Int) {
        try checkHealth()
        let r = shape.ranks
        let all = try control.download(gpu).map(Int.init)
        try checkHealth()
        let i = Array(all[16..<(16 + 5 * r + 1)])
        return (Array(i[0..<r]), Array(i[r..<(2 * r)]), Array(i[(2 * r)..<(3 * r)]), Array(i[(4 * r)..<(5 * r)]), i[5 * r])
    }

    /// Rows this rank received in the last normal dispatch (synchronises).
    public func receivedRows() throws -> Int { try info().total }

    /// Synchronises the stream and throws `CommunicatorError.aborted` if a kernel timed out waiting for a rank.
    public func checkHealth() throws {
        let syncError: Error?
        do { try gpu.synchronize(); syncError = nil } catch { syncError = error }
        if diag[0] != 0 {
            let kinds = ["notify", "dispatch", "combine", "low-latency dispatch", "low-latency combine", "barrier",
                         "all-to-all", "?"]
            let kind = kinds[Int(min(max(diag[1], 0), 7))]
            throw CommunicatorError.aborted(
                "rank \(rank): \(kind) timed out after \(timeoutSeconds) s waiting for rank \(diag[2]) "
                    + "(expected epoch \(diag[3]), saw \(diag[4])); the peer is dead, hung or out of step")
        }
        if let syncError { throw syncError }
    }

    /// Copies `bytes` from local `source` into rank `peer`'s `.receive` region with the copy engine (the P2P ceiling).
    public func copyToPeer(_ source: CUdeviceptr, bytes: Int, peer: Int) throws {
        let api = gpu.context.api
        try api.check(
            api.cuMemcpyDtoDAsync(peerAddress(.receive, rank: peer), source, bytes, gpu.stream.handle),
            "cuMemcpyDtoDAsync(\(bytes) bytes to rank \(peer))")
    }
}
