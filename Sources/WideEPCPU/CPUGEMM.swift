/// Blocked SIMD GEMM for the CPU backend: `C = A·Bᵀ` with A [M, K] and B [N, K] both row-major (the layout of
/// `nn.Linear` weights), so every output is a dot product along contiguous memory.
///
/// B is packed into panels of 8 columns ([K][8], zero-padded) and a 4×8 register tile of `SIMD8<Float>`
/// accumulators sweeps the rows of A over each panel (4 broadcasts and one vector load per k).
enum CPUGEMM {
    /// Panel width (columns of C per packed panel).
    static let nr = 8
    /// Rows of A per micro-tile.
    static let mr = 4

    /// Floats of pack scratch `gemm` needs for a depth of `k`.
    static func packFloats(k: Int) -> Int { k * nr }

    /// Computes rows `rows` and columns `cols` of `C = A·Bᵀ` (or `C[i] += scale[i] · (A·Bᵀ)[i]` when
    /// `accumulate`). `pack` must hold `packFloats(k:)` floats.
    static func gemm(
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int, rows: Range<Int>, cols: Range<Int>, k: Int, pack: UnsafeMutablePointer<Float>,
        accumulate: Bool = false, rowScale: UnsafePointer<Float>? = nil
    ) {
        guard !rows.isEmpty, !cols.isEmpty else { return }
        var n0 = cols.lowerBound
        while n0 < cols.upperBound {
            let nc = min(nr, cols.upperBound &- n0)
            packPanel(b: b + n0 &* ldb, ldb: ldb, columns: nc, k: k, into: pack)
            var m0 = rows.lowerBound
            while m0 < rows.upperBound {
                let mc = min(mr, rows.upperBound &- m0)
                tile(a: a + m0 &* lda, lda: lda, rows: mc, panel: pack, k: k, c: c + m0 &* ldc + n0, ldc: ldc,
                     columns: nc, accumulate: accumulate, rowScale: rowScale.map { $0 + m0 })
                m0 &+= mr
            }
            n0 &+= nr
        }
    }

    /// Packs `columns` rows of B (each `k` long) into a [k][8] panel, zero-padding missing columns.
    @inline(__always)
    static func packPanel(b: UnsafePointer<Float>, ldb: Int, columns: Int, k: Int, into p: UnsafeMutablePointer<Float>) {
        if columns < nr { p.update(repeating: 0, count: k &* nr) }
        for j in 0..<columns {
            let row = b + j &* ldb
            var q = p + j
            for kk in 0..<k {
                q.pointee = row[kk]
                q += nr
            }
        }
    }

    /// One 4×8 micro-tile (fewer rows/columns at the edges).
    @inline(__always)
    static func tile(
        a: UnsafePointer<Float>, lda: Int, rows: Int, panel: UnsafePointer<Float>, k: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, columns: Int, accumulate: Bool, rowScale: UnsafePointer<Float>?
    ) {
        // Missing rows alias row 0; their results are dropped.
        let a0 = a
        let a1 = rows > 1 ? a + lda : a
        let a2 = rows > 2 ? a + 2 &* lda : a
        let a3 = rows > 3 ? a + 3 &* lda : a
        var c0 = SIMD8<Float>(repeating: 0), c1 = c0, c2 = c0, c3 = c0
        let praw = UnsafeRawPointer(panel)
        var kk = 0
        while kk < k {
            let bv = praw.loadUnaligned(fromByteOffset: kk &* 32, as: SIMD8<Float>.self)
            c0 += bv * a0[kk]
            c1 += bv * a1[kk]
            c2 += bv * a2[kk]
            c3 += bv * a3[kk]
            kk &+= 1
        }
        store(c0, to: c, columns: columns, accumulate: accumulate, scale: rowScale?[0] ?? 1)
        if rows > 1 { store(c1, to: c + ldc, columns: columns, accumulate: accumulate, scale: rowScale?[1] ?? 1) }
        if rows > 2 { store(c2, to: c + 2 &* ldc, columns: columns, accumulate: accumulate, scale: rowScale?[2] ?? 1) }
        if rows > 3 { store(c3, to: c + 3 &* ldc, columns: columns, accumulate: accumulate, scale: rowScale?[3] ?? 1) }
    }

    @inline(__always)
    static func store(
        _ v: SIMD8<Float>, to c: UnsafeMutablePointer<Float>, columns: Int, accumulate: Bool, scale: Float
    ) {
        if accumulate {
            if columns == nr {
                let old = UnsafeRawPointer(c).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(c).storeBytes(of: old + v * scale, as: SIMD8<Float>.self)
            } else {
                for j in 0..<columns { c[j] += v[j] * scale }
            }
        } else if columns == nr {
            UnsafeMutableRawPointer(c).storeBytes(of: v, as: SIMD8<Float>.self)
        } else {
            for j in 0..<columns { c[j] = v[j] }
        }
    }
}
