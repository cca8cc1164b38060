package loss

import "math"

// stats are a loss computation's results besides the gradient.
type stats struct {
	loss, posCos, negCos, top1 float64
	anchors                    int
}

// pairwise is the float64 core shared by NT-Xent and SupCon, with its
// scratch buffers. Both are the same loss over m embeddings with a group
// per embedding: anchor a's positives P(a) are the other embeddings of its
// group, every other embedding is a negative, a itself is left out.
// NT-Xent's groups are the samples (so the positive is the other view),
// SupCon's are the labels.
//
//	S[a,b]  = x̂_a·x̂_b / T
//	L_a     = log Σ_{b≠a} exp S[a,b] − (1/|P(a)|) Σ_{p∈P(a)} S[a,p]
//	L       = (1/M) Σ_{a: |P(a)|>0} L_a,   M = #{a : |P(a)| > 0}
//	G[a,b]  = dL/dS[a,b] = (softmax_{b≠a}(S[a,·])_b − [b∈P(a)]/|P(a)|) / M
//	dL/dx̂  = (G + Gᵀ) x̂ / T
//
// An anchor without positives (|P(a)| = 0) has no L_a: it counts neither in
// the mean nor in the metrics and gets no gradient as an anchor, but it is
// still a negative of the others. With two views of every sample it cannot
// happen; a batch where no anchor has a positive has loss 0 and gradient 0.
//
// The work is two row-parallel phases around a serial reduction: rows of S
// and of G with each anchor's terms (phaseRows), then the sums and the
// symmetrisation, then rows of (G + Gᵀ) x̂ and the normalisation's backward
// (phaseGrad).
type pairwise struct {
	team team

	// The call's inputs and output.
	x, gx []float64
	group []int64
	m, d  int
	t     float64
	scale float64 // 1/M, for phaseGrad

	// Scratch, kept between calls.
	xv, gxv          []float64 // float32 inputs widened, and the gradient
	groupv           []int64
	xh, xhT, s, gxh  []float64
	nrm              []float64
	la, ps, ns, top1 []float64 // per anchor: L_a, Σ positive cos, Σ negative cos, top-1 hit
	npos             []int
}

const (
	phaseRows = iota
	phaseGrad
)

// pairwiseMemoryBytes estimates the scratch a pairwise loss (NTXent,
// SupCon) keeps for n samples of d values, m = 2n embeddings: the
// float64 buffers above, about 40·m·d + 8·m² + 64·m bytes.
func pairwiseMemoryBytes(n, d int) int64 {
	m, df := 2*float64(n), float64(d)
	return saturate(8 * (5*m*df + m*m + 8*m))
}

// compute evaluates the loss of the m×d raw embeddings x with the given
// groups (len m) at temperature t, writing dL/dx to gx (m×d).
func (p *pairwise) compute(x []float64, group []int64, m, d int, t float64, gx []float64) (stats, error) {
	if p.team.r == nil {
		p.team.r = p
	}
	p.x, p.gx, p.group, p.m, p.d, p.t = x, gx, group, m, d, t
	p.xh = grow(p.xh, m*d)
	p.xhT = grow(p.xhT, m*d)
	p.s = grow(p.s, m*m)
	p.gxh = grow(p.gxh, m*d)
	p.nrm = grow(p.nrm, m)
	p.la = grow(p.la, m)
	p.ps = grow(p.ps, m)
	p.ns = grow(p.ns, m)
	p.top1 = grow(p.top1, m)
	p.npos = grow(p.npos, m)

	normalize(p.xh, p.nrm, x, m, d)
	transpose(p.xhT, p.xh, m, d)
	if err := p.team.run(phaseRows, m); err != nil {
		return stats{}, err
	}

	var st stats
	var posSum, negSum float64
	var posN, negN int
	for a, np := range p.npos[:m] {
		if np == 0 {
			continue
		}
		st.anchors++
		st.loss += p.la[a]
		st.top1 += p.top1[a]
		posSum, posN = posSum+p.ps[a], posN+np
		negSum, negN = negSum+p.ns[a], negN+m-1-np
	}
	if st.anchors == 0 {
		clear(gx[:m*d])
		return stats{}, nil
	}
	p.scale = 1 / float64(st.anchors)
	st.loss *= p.scale
	st.top1 *= p.scale
	st.posCos = posSum / float64(posN)
	if negN > 0 {
		st.negCos = negSum / float64(negN)
	}
	// S depends on x̂_a through both S[a,·] and S[·,a]: W = G + Gᵀ.
	s := p.s
	for a := range m {
		for b := a + 1; b < m; b++ {
			v := s[a*m+b] + s[b*m+a]
			s[a*m+b], s[b*m+a] = v, v
		}
	}
	if err := p.team.run(phaseGrad, m); err != nil {
		return stats{}, err
	}
	return st, nil
}

// phase implements phaser.
func (p *pairwise) phase(ph, _, lo, hi int) {
	m, d := p.m, p.d
	switch ph {
	case phaseRows:
		gemmT(p.s[lo*m:], m, p.xh[lo*d:], d, hi-lo, p.xh, d, m, d) // cosines
		for a := lo; a < hi; a++ {
			p.anchor(a)
		}
	case phaseGrad:
		gemmT(p.gxh[lo*d:], d, p.s[lo*m:], m, hi-lo, p.xhT, m, d, m) // W x̂ / T
		normalizeBackward(p.gx[lo*d:], p.gxh[lo*d:], p.xh[lo*d:], p.nrm[lo:], hi-lo, d, p.scale)
	}
}

// anchor turns row a of s from cosines into G[a,·]·M·T⁻¹ (the 1/T of
// dS/dx̂ folded in, the 1/M left to phaseGrad) and records L_a and the
// metrics' terms.
func (p *pairwise) anchor(a int) {
	m, group := p.m, p.group
	row := p.s[a*m : (a+1)*m]
	g := group[a]
	np, best, mx := 0, -1, math.Inf(-1)
	var ps, ns float64
	for b, c := range row {
		if b == a {
			continue
		}
		if group[b] == g {
			np++
			ps += c
		} else {
			ns += c
		}
		if best < 0 || c > mx { // best < 0: NaN similarities still pick one
			mx, best = c, b
		}
	}
	p.npos[a] = np
	if np == 0 {
		clear(row)
		return
	}
	invT := 1 / p.t
	var sum float64
	for b, c := range row {
		if b == a {
			row[b] = 0
			continue
		}
		e := math.Exp((c - mx) * invT)
		row[b] = e
		sum += e
	}
	p.la[a] = mx*invT + math.Log(sum) - ps*invT/float64(np)
	p.ps[a], p.ns[a] = ps, ns
	p.top1[a] = 0
	if group[best] == g {
		p.top1[a] = 1
	}
	is, pw := invT/sum, invT/float64(np)
	for b, e := range row {
		q := e * is
		if b != a && group[b] == g {
			q -= pw
		}
		row[b] = q
	}
}

// computeViews runs compute on the valid samples of the two views (n×d
// each), grouped by labels (SupCon) or, when labels is nil, one group per
// sample (NT-Xent), and writes the results into out.
func (p *pairwise) computeViews(in *Inputs, t float64, labels []int64, out *Outputs) error {
	n, d, rows := in.N, in.D, in.ValidN()
	m := 2 * rows
	p.xv = grow(p.xv, m*d)
	p.gxv = grow(p.gxv, m*d)
	p.groupv = grow(p.groupv, m)
	for v := range 2 {
		toFloat64(p.xv[v*rows*d:(v+1)*rows*d], in.Z[v][:rows*d])
	}
	for i := range rows {
		g := int64(i) // NT-Xent: one group per sample
		if labels != nil {
			g = labels[i]
		}
		p.groupv[i], p.groupv[rows+i] = g, g
	}
	st, err := p.compute(p.xv, p.groupv, m, d, t, p.gxv)
	if err != nil {
		return err
	}
	for v := range 2 {
		out.Grad[v] = setGrad(out.Grad[v], p.gxv[v*rows*d:(v+1)*rows*d], rows, n, d)
	}
	out.Loss, out.PosCos, out.NegCos, out.Top1, out.Anchors = st.loss, st.posCos, st.negCos, st.top1, st.anchors
	return nil
}
