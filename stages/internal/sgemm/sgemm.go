package sgemm

import (
	"sync"
	"unsafe"

	"github.com/contrastream/contrastream/pipeline"
)

// Gemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices,
// op(a) m×k and op(b) k×n, op(x) = xᵀ when the trans flag is set: the
// semantics of gonum's blas32 Implementation.Sgemm with row-major leading
// dimensions. a is stored m×k (k×m when transA) with row stride lda ≥ its
// number of columns, likewise b (k×n, or n×k when transB) with ldb, and c
// (m×n) with ldc ≥ n. It panics, as gonum does, on negative sizes, short
// leading dimensions or slices too short for them.
//
// When beta == 0, c is overwritten without being read: NaN or Inf in c do
// not leak into the result. When alpha == 0 or k == 0, c is only scaled by
// beta.
//
// Gemm only reads a and b and writes only the m×n elements of c; it runs on
// the calling goroutine, so calls on disjoint c run concurrently. Cost:
// 2·m·n·k flops plus packing, O(m·k·⌈n/nc⌉ + k·n) copies; packing buffers
// (about 2.5 MB) come from a sync.Pool, so a call allocates nothing once
// warm. Each element of c is summed over k in increasing order, in blocks
// of k that depend only on k, so the result does not depend on how the
// work is split (see GemmParallel).
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	check(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	p := problem{transA, transB, k, alpha, a, lda, b, ldb, beta, c, ldc}
	ws := getWorkspace()
	p.run(&active, ws, 0, m, 0, n)
	wsPool.Put(ws)
}

// GemmParallel is Gemm split over up to workers goroutines, the calling one
// included, by blocks of whole micro-tiles of rows or columns of c (the
// larger dimension, so that the smaller operand is the one each worker
// packs again, as each packs its own copy). Its result is bit-for-bit Gemm's for any workers: every
// element of c is computed by the same sequence of operations. workers < 2,
// or a problem too small to share, runs Gemm on the calling goroutine.
//
// The workers run as tasks of a pipeline.Team, the project's one fan-out
// (a whole tile split, fixed by the shape, is its contract for results
// that do not depend on the worker count). GemmParallel returns when
// every goroutine it started has finished. A panic in a worker (a bug:
// the arguments are checked before any starts) is re-raised on the
// calling goroutine as a *pipeline.PanicError carrying the worker's
// stack, where the caller's own recovery can catch it, instead of killing
// the process from a goroutine nobody can recover. The Team, its task
// function and the packing buffers, one set per worker, come from pools:
// a warm call allocates nothing.
func GemmParallel(workers int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	check(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	kern := &active
	tilesM := (m + kern.mr - 1) / kern.mr
	tilesN := (n + kern.nr - 1) / kern.nr
	// Each worker packs all of the operand along the dimension it does not
	// split: split n (all workers pack a, m×k) when m ≤ n, else m (all pack
	// b, k×n), unless that dimension has too few tiles for the workers.
	splitN := n >= m
	if splitN && tilesN < workers && tilesM > tilesN || !splitN && tilesM < workers && tilesN > tilesM {
		splitN = !splitN
	}
	tiles := tilesM
	if splitN {
		tiles = tilesN
	}
	// Below about 2 Mflop per worker, goroutines cost more than they save.
	if w := 2 * m * n * k / (1 << 21); workers > w {
		workers = max(w, 1)
	}
	workers = min(workers, tiles)
	if workers < 2 {
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	j := jobPool.Get().(*job)
	j.p = problem{transA, transB, k, alpha, a, lda, b, ldb, beta, c, ldc}
	j.kern, j.m, j.n, j.tiles, j.workers, j.splitN = kern, m, n, tiles, workers, splitN
	err := j.team.Run(workers, workers, j.task)
	j.p = problem{} // drop the references to the caller's slices
	jobPool.Put(j)
	if err != nil {
		panic(err)
	}
}

// job is one GemmParallel call shared by its workers.
type job struct {
	p              problem
	kern           *kernel
	m, n           int
	tiles, workers int
	splitN         bool
	team           pipeline.Team
	task           func(_, w int) error // j.work, made once per job
}

var jobPool = sync.Pool{New: func() any {
	j := new(job)
	j.task = j.work
	return j
}}

// testHookWorker, when set (by tests only), is called by each worker of
// GemmParallel before its share.
var testHookWorker func(w int)

// work runs worker w's share: a contiguous run of whole tiles.
func (j *job) work(_, w int) error {
	if testHookWorker != nil {
		testHookWorker(w)
	}
	t0, t1 := j.tiles*w/j.workers, j.tiles*(w+1)/j.workers
	i0, i1, j0, j1 := 0, j.m, 0, j.n
	if j.splitN {
		j0, j1 = t0*j.kern.nr, min(t1*j.kern.nr, j.n)
	} else {
		i0, i1 = t0*j.kern.mr, min(t1*j.kern.mr, j.m)
	}
	ws := getWorkspace()
	j.p.run(j.kern, ws, i0, i1, j0, j1)
	wsPool.Put(ws)
	return nil
}

// problem holds the arguments of one call, checked.
type problem struct {
	transA, transB bool
	k              int
	alpha          float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	beta           float32
	c              []float32
	ldc            int
}

// run computes rows [i0, i1) × columns [j0, j1) of c: Goto's loops. For each
// block of nc columns and each block of kc steps of k, b's block is packed
// (it stays in L2); for each block of mc rows a's block is packed; then each
// micro-panel of a (mr rows, in L1) meets every micro-panel of b in turn.
func (p *problem) run(kern *kernel, ws *workspace, i0, i1, j0, j1 int) {
	mr, nr, fn := kern.mr, kern.nr, kern.fn
	k := p.k
	// Blocks of k of (nearly) equal size, depending only on k.
	kc := (k + (k+kern.kc-1)/kern.kc - 1) / ((k + kern.kc - 1) / kern.kc)
	ncMax := min(kern.nc, roundUp(j1-j0, nr))
	mcMax := min(kern.mc, roundUp(i1-i0, mr))
	bufA := ws.floats(&ws.a, mcMax*kc)
	bufB := ws.floats(&ws.b, ncMax*kc)
	tile := ws.floats(&ws.tile, mr*nr)
	c, ldc := p.c, p.ldc
	for jc := j0; jc < j1; jc += ncMax {
		nb := min(ncMax, j1-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			beta, accum := p.beta, 1
			if pc > 0 {
				beta = 1
			} else if beta == 0 {
				accum = 0
			}
			packB(kern, bufB, p.transB, p.b, p.ldb, pc, kb, jc, nb)
			for ic := i0; ic < i1; ic += mcMax {
				mb := min(mcMax, i1-ic)
				packA(kern, bufA, p.transA, p.a, p.lda, ic, mb, pc, kb)
				for ir := 0; ir < mb; ir += mr {
					ap := &bufA[ir*kb]
					rows := min(mr, mb-ir)
					ci := (ic+ir)*ldc + jc
					for jr := 0; jr < nb; jr += nr {
						bp := &bufB[jr*kb]
						cols := min(nr, nb-jr)
						if rows == mr && cols == nr {
							// Bounds: check() proved the tile lies in c.
							fn(kb, ap, bp, &c[ci+jr], ldc, p.alpha, beta, accum)
							continue
						}
						// An edge tile. With edge kernels, the one for
						// rows × pw, pw the packed panel's width; else
						// the full one. Both compute each element as fn
						// does.
						ef, er, ec := fn, mr, nr
						if kern.edge != nil {
							ec = kern.panelWidth(cols)
							ef, er = kern.edge[rows-1][ec/kern.w-1], rows
						}
						if rows == er && cols == ec {
							ef(kb, ap, bp, &c[ci+jr], ldc, p.alpha, beta, accum)
							continue
						}
						// Columns the kernel would write that c lacks:
						// run it on a tile copied out and back.
						if accum != 0 {
							for r := range rows {
								o := ci + r*ldc + jr
								copy(tile[r*nr:r*nr+cols], c[o:o+cols])
							}
						}
						ef(kb, ap, bp, &tile[0], nr, p.alpha, beta, accum)
						for r := range rows {
							o := ci + r*ldc + jr
							copy(c[o:o+cols], tile[r*nr:r*nr+cols])
						}
					}
				}
			}
		}
	}
}

// packA copies rows [i0, i0+mb) and steps [p0, p0+kb) of op(a) into dst as
// ⌈mb/mr⌉ micro-panels of kb×mr (mr floats per step), zero-padding the
// last panel's missing rows.
func packA(kern *kernel, dst []float32, trans bool, a []float32, lda, i0, mb, p0, kb int) {
	mr := kern.mr
	for q := 0; q < mb; q += mr {
		d := dst[q*kb : (q+mr)*kb]
		rows := min(mr, mb-q)
		if trans { // op(a)[i][p] = a[p*lda+i]: each step is contiguous.
			// Panel by panel: its stores are sequential, where a's
			// row order would scatter them kb·mr floats apart, often
			// 4 KiB (cache-set conflicts).
			if rows == 8 && mr == 8 && kern.gather8 != nil {
				o := p0*lda + i0 + q
				_ = a[o+(kb-1)*lda+7] // the kb rows of 8 lie within a
				_ = d[8*kb-1]
				kern.gather8(kb, &a[o], lda, &d[0])
				continue
			}
			for p := range kb {
				o := (p0+p)*lda + i0 + q
				dp := d[p*mr : p*mr+mr]
				copy(dp, a[o:o+rows])
				clear(dp[rows:])
			}
			continue
		}
		if rows == 8 && mr == 8 {
			packRows8(kern, d, 8, a, lda, (i0+q)*lda+p0, kb)
			continue
		}
		for r := range rows {
			o := (i0+q+r)*lda + p0
			for p, v := range a[o : o+kb] {
				d[p*mr+r] = v
			}
		}
		for r := rows; r < mr; r++ {
			for p := range kb {
				d[p*mr+r] = 0
			}
		}
	}
}

// packRows8 transposes 8 rows of kb floats, starting at a[o] with stride
// lda, into d: step p's 8 floats go to d[p*ds:p*ds+8].
func packRows8(kern *kernel, d []float32, ds int, a []float32, lda, o, kb int) {
	_ = a[o+7*lda+kb-1] // the 8 rows lie within a
	_ = d[ds*(kb-1)+7]  // the kb rows of 8 lie within d
	if n := kb &^ 7; n > 0 && kern.transpose8 != nil {
		kern.transpose8(n, &a[o], lda, &d[0], ds)
		if n == kb {
			return
		}
		o += n
		kb -= n
		d = d[n*ds:]
	}
	r0 := a[o : o+kb]
	r1 := a[o+lda : o+lda+kb]
	r2 := a[o+2*lda : o+2*lda+kb]
	r3 := a[o+3*lda : o+3*lda+kb]
	r4 := a[o+4*lda : o+4*lda+kb]
	r5 := a[o+5*lda : o+5*lda+kb]
	r6 := a[o+6*lda : o+6*lda+kb]
	r7 := a[o+7*lda : o+7*lda+kb]
	d = d[:ds*(kb-1)+8]
	for p := range r0 {
		s := d[ds*p : ds*p+8 : ds*p+8]
		s[0], s[1], s[2], s[3] = r0[p], r1[p], r2[p], r3[p]
		s[4], s[5], s[6], s[7] = r4[p], r5[p], r6[p], r7[p]
	}
}

// packB copies steps [p0, p0+kb) and columns [j0, j0+nb) of op(b) into dst
// as ⌈nb/nr⌉ micro-panels, kb×nr (nr floats per step) but for the last,
// which is kb×pw, pw = kern.panelWidth(its columns), zero-padded.
func packB(kern *kernel, dst []float32, trans bool, b []float32, ldb, p0, kb, j0, nb int) {
	nr := kern.nr
	if !trans {
		packBRows(dst, b, ldb, p0, kb, j0, nb, nr, kern.panelWidth(nb%nr))
		return
	}
	for q := 0; q < nb; q += nr {
		cols := min(nr, nb-q)
		pw := kern.panelWidth(cols)
		d := dst[q*kb : q*kb+pw*kb]
		j := 0
		if pw%8 == 0 {
			for ; j+8 <= cols; j += 8 {
				packRows8(kern, d[j:], pw, b, ldb, (j0+q+j)*ldb+p0, kb)
			}
		}
		for ; j < cols; j++ {
			o := (j0+q+j)*ldb + p0
			for p, v := range b[o : o+kb] {
				d[p*pw+j] = v
			}
		}
		for j := cols; j < pw; j++ {
			for p := range kb {
				d[p*pw+j] = 0
			}
		}
	}
}

// packBRows is packB for b not transposed, where each step of k is a
// contiguous row of b: it reads b row by row, the order the hardware
// prefetchers follow, and scatters each row over the micro-panels; the
// last panel, if partial, is pw wide.
func packBRows(dst []float32, b []float32, ldb, p0, kb, j0, nb, nr, pw int) {
	full := nb / nr * nr
	for p := range kb {
		row := b[(p0+p)*ldb+j0 : (p0+p)*ldb+j0+nb]
		d := dst[p*nr:]
		q := 0
		switch nr {
		case 48:
			for ; q < full; q += 48 {
				*(*[48]float32)(d[q*kb:]) = *(*[48]float32)(row[q:])
			}
		case 16:
			for ; q < full; q += 16 {
				*(*[16]float32)(d[q*kb:]) = *(*[16]float32)(row[q:])
			}
		default:
			for ; q < full; q += nr {
				copy(d[q*kb:q*kb+nr], row[q:q+nr])
			}
		}
		if q < nb {
			dp := dst[full*kb+p*pw : full*kb+p*pw+pw]
			copy(dp, row[q:])
			clear(dp[nb-q:])
		}
	}
}

// scale sets c = beta·c for the m×n matrix c; beta == 0 clears it.
func scale(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// workspace holds one goroutine's packing buffers.
type workspace struct {
	a, b, tile []float32
}

var wsPool = sync.Pool{New: func() any { return new(workspace) }}

func getWorkspace() *workspace { return wsPool.Get().(*workspace) }

// floats returns (*buf)[:n], growing *buf if needed, 64-byte aligned so
// that the kernels' loads of packed panels do not split cache lines.
func (ws *workspace) floats(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		s := make([]float32, n+16)
		off := int(uintptr(unsafe.Pointer(&s[0]))&63) / 4
		if off != 0 {
			off = 16 - off
		}
		*buf = s[off : off+n]
	}
	return (*buf)[:n]
}

func roundUp(x, r int) int { return (x + r - 1) / r * r }

// check panics, with gonum's messages, unless the arguments describe
// matrices that lie within a, b and c.
func check(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	switch {
	case m < 0:
		panic("blas: m < 0")
	case n < 0:
		panic("blas: n < 0")
	case k < 0:
		panic("blas: k < 0")
	}
	ra, ca := m, k
	if transA {
		ra, ca = k, m
	}
	rb, cb := k, n
	if transB {
		rb, cb = n, k
	}
	switch {
	case lda < max(1, ca):
		panic("blas: bad leading dimension of A")
	case ldb < max(1, cb):
		panic("blas: bad leading dimension of B")
	case ldc < max(1, n):
		panic("blas: bad leading dimension of C")
	}
	if m == 0 || n == 0 {
		return
	}
	switch {
	case k > 0 && len(a) < lda*(ra-1)+ca:
		panic("blas: insufficient length of a")
	case k > 0 && len(b) < ldb*(rb-1)+cb:
		panic("blas: insufficient length of b")
	case len(c) < ldc*(m-1)+n:
		panic("blas: insufficient length of c")
	}
}

// Kernel names the micro-kernel this process uses: "avx512-8x48",
// "avx2-6x16" or "go4x4", chosen once at start-up from the CPU's features
// (and the purego build tag).
func Kernel() string { return active.name }
