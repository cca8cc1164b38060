package loss

import (
	"fmt"
	"math"

	"github.com/contrastream/contrastream/stages/internal/sgemm"
)

// TypeInfoNCE is InfoNCE's name, as Config.Type and Loss.Name spell it.
const TypeInfoNCE = "infonce"

// DefaultInfoNCETemperature is InfoNCE's default temperature, MoCo v2's.
const DefaultInfoNCETemperature = 0.2

func init() {
	Register(Kind{
		Name:               TypeInfoNCE,
		Doc:                "MoCo's InfoNCE: each query against its key and a queue of earlier keys",
		DefaultTemperature: DefaultInfoNCETemperature,
		Needs:              Needs{Queue: true},
		New: func(c Config) (Loss, error) {
			return NewInfoNCE(InfoNCEConfig{Temperature: c.Temperature, Workers: c.Workers})
		},
		// The scratch of infonce below: about 72·n·d + 4·n·k + 12·k·d bytes
		// with the stage's buffers.
		MemoryBytes: func(_ Config, n, d, k int) int64 {
			nf, df, kf := float64(n), float64(d), float64(k)
			return saturate(8*(6*nf*df+7*nf+kf*df+kf) + 4*(2*nf*df+nf*kf+kf*df))
		},
	})
}

// InfoNCEConfig configures InfoNCE. Its zero value is MoCo v2's T = 0.2.
type InfoNCEConfig struct {
	// Temperature divides the cosine similarities, ≥ MinTemperature.
	// nil means the default, 0.2; 0 is an error.
	Temperature *float64 `yaml:"temperature"`
	// Workers is the number of goroutines a call may use, at most
	// MaxWorkers. Default runtime.GOMAXPROCS(0) at construction. The
	// results do not depend on it.
	Workers int `yaml:"workers"`
}

// Validate returns a *pipeline.FieldError naming "temperature" when it is
// set but not a finite number ≥ MinTemperature (0 included), or
// "workers" when it is out of range.
func (c InfoNCEConfig) Validate() error {
	if err := validateTemperature(c.Temperature); err != nil {
		return err
	}
	return validateWorkers(c.Workers)
}

// InfoNCE is MoCo's loss: each query q_i (Z[0]) has its key k_i (Z[1]) as
// positive and the K rows u_j of the queue as negatives. With q̂, k̂, û the
// L2-normalised vectors, the logits of query i are
//
//	[q̂_i·k̂_i, q̂_i·û_1, …, q̂_i·û_K] / T
//
// and the loss is their cross-entropy with target 0, averaged over the
// valid queries. Compute gives dL/dZ[0] only: the key encoder and the
// queue get no gradient, so Grad[1] is set to length 0. A padded sample is
// no query; whether its key enters the queue is the queue stage's
// business (it should not).
//
// This is the loss of torch_reference.py, which takes view 1 as the query
// and view 2 as the key and keeps normalised keys in its queue (the queue's
// rows are normalised again here, which changes nothing for unit rows).
//
// Cost per call for n queries of size d and a queue of K: about 2·n·K·d
// multiply-adds, on the float32 SGEMM kernel, and n·K exponentials, split
// over Workers goroutines (for n = 256, d = 128, K = 4096: 44 ms on one
// core of this project's machine while other work loaded it, against 227
// ms for the float64 dot products it replaced; BenchmarkInfoNCE), and
// scratch of about 3·K·d + n·K values kept between calls. Not safe for
// concurrent use.
type InfoNCE struct {
	t float64
	s infonce
}

var _ Loss = (*InfoNCE)(nil)

// NewInfoNCE returns an InfoNCE loss, or cfg.Validate's error.
func NewInfoNCE(cfg InfoNCEConfig) (*InfoNCE, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &InfoNCE{t: orDefault(cfg.Temperature, DefaultInfoNCETemperature)}
	l.s.team = newTeam(cfg.Workers, &l.s)
	return l, nil
}

// Name returns "infonce".
func (l *InfoNCE) Name() string { return TypeInfoNCE }

// Temperature returns the temperature in use.
func (l *InfoNCE) Temperature() float64 { return l.t }

// Compute implements Loss.
func (l *InfoNCE) Compute(in Inputs, out *Outputs) error {
	if err := in.Check(TypeInfoNCE); err != nil {
		return err
	}
	if in.K < 1 || len(in.Queue) != in.K*in.D {
		return fmt.Errorf("loss infonce: queue of %d values for K = %d keys of D = %d; want K ≥ 1 and K×D values", len(in.Queue), in.K, in.D)
	}
	n, d, rows := in.N, in.D, in.ValidN()
	s := &l.s
	s.qv = grow(s.qv, rows*d)
	s.kv = grow(s.kv, rows*d)
	s.gqv = grow(s.gqv, rows*d)
	toFloat64(s.qv, in.Z[0][:rows*d])
	toFloat64(s.kv, in.Z[1][:rows*d])
	if err := s.setQueue(in.Queue, in.K, d); err != nil {
		return err
	}
	st, err := s.compute(s.qv, s.kv, rows, d, l.t, s.gqv)
	if err != nil {
		return err
	}
	out.Grad[0] = setGrad(out.Grad[0], s.gqv, rows, n, d)
	out.Grad[1] = out.Grad[1][:0]
	out.Loss, out.PosCos, out.NegCos, out.Top1, out.Anchors = st.loss, st.posCos, st.negCos, st.top1, st.anchors
	return nil
}

// infonce is InfoNCE's core and scratch.
//
//	l_i0 = q̂_i·k̂_i / T,  l_ij = q̂_i·û_j / T,  p_i = softmax(l_i)
//	L    = (1/n) Σ_i (logsumexp(l_i) − l_i0)
//	dL/dq̂_i = ((p_i0 − 1) k̂_i + Σ_j p_ij û_j) / (n T)
//
// The two products with the queue, the cosines q̂·Ûᵀ and the gradient
// P·Û (2·n·K·d multiply-adds, almost all the work), run on the float32
// SGEMM kernel of stages/internal/sgemm; everything else (norms, the
// positives, softmax, logsumexp, sums) in float64. Each worker takes a
// range of queries. Per-query terms are summed afterwards in query order,
// and the kernel computes each element the same way whatever the range,
// so the result does not depend on the number of workers.
type infonce struct {
	team team

	// The call's inputs and output.
	q, k, gq []float64
	n, d, kq int
	t        float64
	queue    []float32

	// Scratch, kept between calls.
	qv, kv, gqv        []float64 // float32 inputs widened, and the gradient
	qh, kh, gqh        []float64
	nq, nk             []float64
	uh                 []float64 // the normalised queue, kq×d
	unrm               []float64
	qh32, uh32, g32    []float32 // q̂, Û and Σ_j p_ij û_j in float32
	lg                 []float32 // n×kq: cosines, then p_ij/(nT)
	c0                 []float64 // per query: (p_i0 − 1)/(nT)
	lq, pos, neg, top1 []float64 // per query
}

const (
	phaseQueue = iota
	phaseQuery
)

// setQueue normalises the queue (kq×d) and keeps it in float64 and float32.
func (s *infonce) setQueue(queue []float32, kq, d int) error {
	if s.team.r == nil {
		s.team.r = s
	}
	s.queue, s.kq, s.d = queue, kq, d
	s.uh = grow(s.uh, kq*d)
	s.uh32 = grow(s.uh32, kq*d)
	s.unrm = grow(s.unrm, kq)
	return s.team.run(phaseQueue, kq)
}

// compute evaluates the loss of n raw queries q and keys k (n×d) against
// the queue set by setQueue, writing dL/dq to gq (n×d).
func (s *infonce) compute(q, k []float64, n, d int, t float64, gq []float64) (stats, error) {
	if s.d != d {
		panic("loss: infonce queue shape mismatch")
	}
	s.q, s.k, s.gq, s.n, s.t = q, k, gq, n, t
	s.qh = grow(s.qh, n*d)
	s.kh = grow(s.kh, n*d)
	s.gqh = grow(s.gqh, n*d)
	s.qh32 = grow(s.qh32, n*d)
	s.g32 = grow(s.g32, n*d)
	s.lg = grow(s.lg, n*s.kq)
	s.c0 = grow(s.c0, n)
	s.nq = grow(s.nq, n)
	s.nk = grow(s.nk, n)
	s.lq = grow(s.lq, n)
	s.pos = grow(s.pos, n)
	s.neg = grow(s.neg, n)
	s.top1 = grow(s.top1, n)
	normalize(s.qh, s.nq, q, n, d)
	normalize(s.kh, s.nk, k, n, d)
	toFloat32(s.qh32, s.qh[:n*d])
	if err := s.team.run(phaseQuery, n); err != nil {
		return stats{}, err
	}
	var st stats
	for i := range n {
		st.loss += s.lq[i]
		st.posCos += s.pos[i]
		st.negCos += s.neg[i]
		st.top1 += s.top1[i]
	}
	st.anchors = n
	st.loss /= float64(n)
	st.top1 /= float64(n)
	st.posCos /= float64(n)
	st.negCos /= float64(n) * float64(s.kq)
	return st, nil
}

// phase implements phaser.
func (s *infonce) phase(ph, _, lo, hi int) {
	d, kq := s.d, s.kq
	switch ph {
	case phaseQueue:
		toFloat64(s.uh[lo*d:hi*d], s.queue[lo*d:hi*d])
		normalize(s.uh[lo*d:], s.unrm[lo:], s.uh[lo*d:], hi-lo, d)
		toFloat32(s.uh32[lo*d:hi*d], s.uh[lo*d:hi*d])
	case phaseQuery:
		if hi <= lo {
			return
		}
		m := hi - lo
		sgemm.Gemm(false, true, m, kq, d, 1, s.qh32[lo*d:], d, s.uh32, d, 0, s.lg[lo*kq:], kq)
		for i := lo; i < hi; i++ {
			s.query(i)
		}
		sgemm.Gemm(false, false, m, d, kq, 1, s.lg[lo*kq:], kq, s.uh32, d, 0, s.g32[lo*d:], d)
		for i := lo; i < hi; i++ {
			g, kr, c := s.gqh[i*d:(i+1)*d], s.kh[i*d:(i+1)*d], s.c0[i]
			for j, v := range s.g32[i*d : (i+1)*d] {
				g[j] = float64(v) + c*kr[j]
			}
		}
		normalizeBackward(s.gq[lo*d:], s.gqh[lo*d:], s.qh[lo*d:], s.nq[lo:], m, d, 1)
	}
}

// query turns query i's cosines with the queue (row i of lg) into its
// loss term and figures, and the row into p_ij/(nT); c0[i] gets the
// positive's (p_i0 − 1)/(nT).
func (s *infonce) query(i int) {
	d, kq := s.d, s.kq
	invT := 1 / s.t
	scale := invT / float64(s.n)
	row := s.lg[i*kq : (i+1)*kq]
	pos := dot(s.qh[i*d:(i+1)*d], s.kh[i*d:(i+1)*d])
	mx, neg := pos, 0.0
	for _, c := range row {
		neg += float64(c)
		mx = max(mx, float64(c))
	}
	s.pos[i], s.neg[i], s.top1[i] = pos, neg, 0
	if pos >= mx {
		s.top1[i] = 1
	}
	e0 := math.Exp((pos - mx) * invT)
	sum := e0
	for j, c := range row {
		e := math.Exp((float64(c) - mx) * invT)
		row[j] = float32(e)
		sum += e
	}
	s.lq[i] = (mx-pos)*invT + math.Log(sum)
	is := scale / sum
	for j, e := range row {
		row[j] = float32(float64(e) * is)
	}
	s.c0[i] = e0*is - scale
}
