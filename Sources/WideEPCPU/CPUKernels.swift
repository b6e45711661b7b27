import Dispatch
import WideEPCore
import WideEPRuntime

/// The CPU reference kernels of one rank: every `MoEKernels` operation on host memory, parallel over a fixed
/// number of workers with `DispatchQueue.concurrentPerform`.
public final class CPUKernels: MoEKernels, @unchecked Sendable {
    public typealias Buffer = HostBuffer

    /// Worker threads this rank's kernels use (1 runs inline on the calling thread).
    public let workers: Int

    public init(workers: Int = 1) { self.workers = max(1, workers) }

    public var deviceName: String { WideEPCPU.deviceName }

    /// Runs `body(i)` for i in 0..<n, spread over the workers (strided, so each worker takes every workers-th item).
    @inline(__always)
    func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if workers <= 1 || n <= 1 {
            for i in 0..<n { body(i) }
            return
        }
        let w = min(workers, n)
        DispatchQueue.concurrentPerform(iterations: w) { start in
            var i = start
            while i < n {
                body(i)
                i &+= w
            }
        }
    }

    /// Splits 0..<n into at most `workers × 4` contiguous chunks of at least `minChunk` items.
    func chunks(_ n: Int, minChunk: Int) -> [Range<Int>] {
        guard n > 0 else { return [] }
        let parts = max(1, min(workers * 4, n / max(minChunk, 1)))
        let size = (n + parts - 1) / parts
        return stride(from: 0, to: n, by: size).map { $0..<min($0 + size, n) }
    }

    // MARK: Memory

    public func allocate(_ dtype: DType, count: Int) throws -> HostBuffer {
        HostBuffer(byteCount: max(count, 1) * dtype.size)
    }

    public func upload(_ source: UnsafeRawBufferPointer, to buffer: HostBuffer, offset: Int) throws {
        let end = offset * 4 + source.count
        guard end <= buffer.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: -1, needed: end, available: buffer.byteCount)
        }
        if let base = source.baseAddress { (buffer.raw + offset * 4).copyMemory(from: base, byteCount: source.count) }
    }

    public func download(_ buffer: HostBuffer, offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        let end = offset * 4 + destination.count
        guard end <= buffer.byteCount else {
            throw CommunicatorError.bufferTooSmall(rank: -1, needed: end, available: buffer.byteCount)
        }
        if let base = destination.baseAddress {
            base.copyMemory(from: buffer.raw + offset * 4, byteCount: destination.count)
        }
    }

    public func copy(
        _ source: HostBuffer, sourceOffset: Int, to destination: HostBuffer, destinationOffset: Int, count: Int
    ) throws {
        (destination.raw + destinationOffset * 4).copyMemory(from: source.raw + sourceOffset * 4, byteCount: count * 4)
    }

    // MARK: Routing

    public func route(
        hidden: HostBuffer, tokens: Int, dense: DenseWeights<HostBuffer>, logitOffset: HostBuffer?,
        config: MoEConfig, experts: HostBuffer, weights: HostBuffer
    ) throws {
        let e = config.numExperts, h = config.hiddenSize, k = config.topK
        guard tokens > 0 else { return }
        let logits = HostBuffer(byteCount: tokens * e * 4)
        let parts = chunks(tokens, minChunk: 16)
        parallelFor(parts.count) { i in
            let range = parts[i]
            MoEMath.routerLogits(
                hidden: hidden.floats, tokens: range, hiddenSize: h, router: dense.router.floats, numExperts: e,
                offset: logitOffset.map { UnsafePointer($0.floats) }, logits: logits.floats)
            let n = range.count
            Router.route(
                logits: UnsafeBufferPointer(start: logits.floats + range.lowerBound * e, count: n * e), tokens: n,
                bias: dense.correctionBias.map { UnsafeBufferPointer(start: $0.floats, count: e) }, config: config,
                experts: UnsafeMutableBufferPointer(start: experts.ints + range.lowerBound * k, count: n * k),
                weights: UnsafeMutableBufferPointer(start: weights.floats + range.lowerBound * k, count: n * k))
        }
    }

    public func countExperts(experts: HostBuffer, tokens: Int, topK: Int, numExperts: Int, counts: HostBuffer) throws {
        let c = counts.ints
        c.update(repeating: 0, count: numExperts)
        let x = experts.ints
        for i in 0..<(tokens * topK) { c[Int(x[i])] &+= 1 }
    }

    public func mapToSlots(experts: HostBuffer, tokens: Int, topK: Int, split: SlotSplit, slots: HostBuffer) throws {
        let n = tokens * topK
        ReplicaSplit.mapTokens(
            experts: UnsafeBufferPointer(start: experts.ints, count: n), map: split.map, placement: split.placement,
            slots: UnsafeMutableBufferPointer(start: slots.ints, count: n))
    }

    // MARK: Model glue

    public func rmsNorm(x: HostBuffer, tokens: Int, hiddenSize: Int, eps: Float, out: HostBuffer) throws {
        let parts = chunks(tokens, minChunk: 32)
        parallelFor(parts.count) { i in
            for t in parts[i] {
                let row = x.floats + t * hiddenSize, o = out.floats + t * hiddenSize
                let ss = MoEMath.dot(row, row, count: hiddenSize)
                let inv = 1 / (ss / Float(hiddenSize) + eps).squareRoot()
                for j in 0..<hiddenSize { o[j] = row[j] * inv }
            }
        }
    }

    public func addInPlace(_ x: HostBuffer, _ y: HostBuffer, count: Int) throws {
        let a = x.floats, b = y.floats
        for i in 0..<count { a[i] += b[i] }
    }
}
