import WideEPWorkload

/// One weight matrix of a checkpoint, resolved and shape-checked, ready to be converted to float32.
///
/// The matrix is `rows × cols` elements starting at element `elementOffset` of its tensor (non-zero for one expert
/// of a fused `[E, rows, cols]` tensor). FP8 E4M3 weights carry DeepSeek-V3's block scales: `scaleInv` is
/// `[⌈rows/blockRows⌉, ⌈cols/blockCols⌉]` and `w[i, j] = q[i, j] × scaleInv[i / blockRows, j / blockCols]`, edge
/// blocks being partial.
struct CheckpointMatrix: @unchecked Sendable {
    // SafeTensor holds an immutable read-only mapping; reading it from several threads is safe.

    /// Tensor key.
    let key: String
    /// File the tensor lives in.
    let path: String
    /// The tensor.
    let tensor: SafeTensor
    /// Rows and columns of the matrix.
    let rows: Int, cols: Int
    /// First element of the matrix in the tensor.
    let elementOffset: Int
    /// FP8 block scales (`weight_scale_inv`), row-major `[⌈rows/blockRows⌉, ⌈cols/blockCols⌉]`; nil when not FP8.
    let scaleInv: [Float]?
    /// FP8 block size (DeepSeek-V3: 128 × 128).
    let blockRows: Int, blockCols: Int

    /// Element types the converter reads directly; anything else that is a float goes through `SafeTensor.floats()`.
    static let floatTypes: Set<SafeTensorsDType> = [.f32, .bf16, .f16, .f8E4M3, .f8E5M2, .f64]

    /// Converts the matrix into `dst` ([rows × cols], row-major float32).
    func convert(into dst: UnsafeMutablePointer<Float>) {
        let n = rows &* cols
        let dtype = tensor.dtype
        let offset = elementOffset
        tensor.withUnsafeBytes { raw in
            switch dtype {
            case .f32:
                UnsafeMutableRawPointer(dst).copyMemory(from: raw.baseAddress! + offset &* 4, byteCount: n &* 4)
                #if !_endian(little)
                for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: dst[i].bitPattern)) }
                #endif
            case .bf16:
                for i in 0..<n {
                    let b = raw.loadUnaligned(fromByteOffset: (offset &+ i) &* 2, as: UInt16.self)
                    dst[i] = FloatBits.bf16ToFloat(UInt16(littleEndian: b))
                }
            case .f16:
                for i in 0..<n {
                    let b = raw.loadUnaligned(fromByteOffset: (offset &+ i) &* 2, as: UInt16.self)
                    dst[i] = FloatBits.halfToFloat(UInt16(littleEndian: b))
                }
            case .f8E4M3:
                let bytes = UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, count: n)
                dequantizeE4M3(bytes, into: dst)
            default:
                // Rare weight types (F64, F8_E5M2): the generic converter, then the slice.
                let all = tensor.floats()
                for i in 0..<n { dst[i] = all[offset &+ i] }
            }
        }
        if let scaleInv, tensor.dtype != .f8E4M3 { applyScales(scaleInv, to: dst) }
    }

    /// FP8 E4M3 → float32 times the block scale (1 when the tensor has no scales).
    private func dequantizeE4M3(_ q: UnsafeBufferPointer<UInt8>, into dst: UnsafeMutablePointer<Float>) {
        let table = FloatBits.e4m3Lookup
        guard let scaleInv else {
            for i in 0..<q.count { dst[i] = table[Int(q[i])] }
            return
        }
        let scaleCols = (cols + blockCols - 1) / blockCols
        table.withUnsafeBufferPointer { table in
            scaleInv.withUnsafeBufferPointer { scales in
                for i in 0..<rows {
                    let srow = (i / blockRows) &* scaleCols
                    let base = i &* cols
                    // One scale per column block; the last block may be partial.
                    for b in 0..<scaleCols {
                        let s = scales[srow &+ b]
                        let end = min(cols, (b &+ 1) &* blockCols)
                        for j in (b &* blockCols)..<end { dst[base &+ j] = table[Int(q[base &+ j])] * s }
                    }
                }
            }
        }
    }

    /// Multiplies `dst` by the block scales (for scaled weights stored in a type other than E4M3).
    private func applyScales(_ scaleInv: [Float], to dst: UnsafeMutablePointer<Float>) {
        let scaleCols = (cols + blockCols - 1) / blockCols
        for i in 0..<rows {
            let srow = (i / blockRows) &* scaleCols
            for j in 0..<cols { dst[i &* cols &+ j] *= scaleInv[srow &+ j / blockCols] }
        }
    }

    /// The matrix as a new array, [rows × cols].
    func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buf, count in
            if let base = buf.baseAddress { convert(into: base) }
            count = rows * cols
        }
    }
}

extension FloatBits {
    /// The 256 FP8 E4M3 values by code, for dequantising whole tensors (`e4m3ToFloat` one code at a time).
    static let e4m3Lookup: [Float] = (0..<256).map { e4m3ToFloat(UInt8($0)) }
}

extension CheckpointFiles {
    /// Resolves tensor `key` as a `rows × cols` matrix (the whole tensor), checking its shape and type; FP8 E4M3
    /// weights must come with `<key>_scale_inv` block scales of the matching shape.
    ///
    /// - Parameter shape: the tensor's expected shape; its product must be rows × cols (e.g. `[1, H]` or `[E]`).
    func matrix(_ key: String, shape: [Int], block: (rows: Int, cols: Int)) throws -> CheckpointMatrix {
        let (t, path) = try tensor(key)
        guard t.shape == shape else {
            throw CheckpointError.wrongShape(key: key, file: path, shape: t.shape, expected: shape)
        }
        guard CheckpointMatrix.floatTypes.contains(t.dtype) else {
            throw CheckpointError.unsupportedDType(key: key, file: path, dtype: t.dtype.rawValue)
        }
        let cols = shape.last ?? 1
        let rows = shape.count >= 2 ? shape.dropLast().reduce(1, *) : 1
        var scales: [Float]?
        let scaleKey = key + "_scale_inv"
        if t.dtype == .f8E4M3 || contains(scaleKey) {
            let (s, spath) = try tensor(scaleKey)
            let want = [(rows + block.rows - 1) / block.rows, (cols + block.cols - 1) / block.cols]
            guard s.shape == want else {
                throw CheckpointError.wrongShape(key: scaleKey, file: spath, shape: s.shape, expected: want)
            }
            guard [.f32, .bf16, .f16, .f64].contains(s.dtype) else {
                throw CheckpointError.unsupportedDType(key: scaleKey, file: spath, dtype: s.dtype.rawValue)
            }
            scales = s.floats()
        }
        return CheckpointMatrix(
            key: key, path: path, tensor: t, rows: rows, cols: cols, elementOffset: 0, scaleInv: scales,
            blockRows: block.rows, blockCols: block.cols)
    }

    /// Expert `expert`'s `rows × cols` slice of a fused `[E, rows, cols]` tensor (transformers 5.x module layout).
    func fusedSlice(_ key: String, experts: Int, expert: Int, rows: Int, cols: Int) throws -> CheckpointMatrix {
        let (t, path) = try tensor(key)
        guard t.shape == [experts, rows, cols] else {
            throw CheckpointError.wrongShape(key: key, file: path, shape: t.shape, expected: [experts, rows, cols])
        }
        guard CheckpointMatrix.floatTypes.contains(t.dtype), t.dtype != .f8E4M3 || !contains(key + "_scale_inv") else {
            throw CheckpointError.unsupportedDType(key: key, file: path, dtype: t.dtype.rawValue)
        }
        return CheckpointMatrix(
            key: key, path: path, tensor: t, rows: rows, cols: cols, elementOffset: expert * rows * cols,
            scaleInv: nil, blockRows: 128, blockCols: 128)
    }
}
