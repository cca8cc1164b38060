package loss

import "fmt"

// TypeSupCon is SupCon's name, as Config.Type and Loss.Name spell it.
const TypeSupCon = "supcon"

// DefaultSupConTemperature is SupCon's default temperature, as in Khosla
// et al.
const DefaultSupConTemperature = 0.1

func init() {
	Register(Kind{
		Name:               TypeSupCon,
		Doc:                "supervised contrastive (L_out): every other view of the anchor's class is a positive",
		DefaultTemperature: DefaultSupConTemperature,
		Needs:              Needs{Labels: true},
		New: func(c Config) (Loss, error) {
			return NewSupCon(SupConConfig{Temperature: c.Temperature, Workers: c.Workers})
		},
		MemoryBytes: func(_ Config, n, d, _ int) int64 { return pairwiseMemoryBytes(n, d) },
	})
}

// SupConConfig configures SupCon. Its zero value is T = 0.1.
type SupConConfig struct {
	// Temperature divides the cosine similarities, ≥ MinTemperature.
	// nil means the default, 0.1; 0 is an error.
	Temperature *float64 `yaml:"temperature"`
	// Workers is the number of goroutines a call may use, at most
	// MaxWorkers. Default runtime.GOMAXPROCS(0) at construction. The
	// results do not depend on it.
	Workers int `yaml:"workers"`
}

// Validate returns a *pipeline.FieldError naming "temperature" when it is
// set but not a finite number ≥ MinTemperature (0 included), or
// "workers" when it is out of range.
func (c SupConConfig) Validate() error {
	if err := validateTemperature(c.Temperature); err != nil {
		return err
	}
	return validateWorkers(c.Workers)
}

// SupCon is the supervised contrastive loss of Khosla et al. (2020), the
// L_out form, with no base-temperature rescaling. Over the 2n views of a
// batch, anchor a's positives P(a) are all other views of samples with its
// label (its own other view included), every other view but itself is in
// the denominator, and
//
//	L_a = −(1/|P(a)|) Σ_{p∈P(a)} log exp(ẑ_a·ẑ_p/T) / Σ_{b≠a} exp(ẑ_a·ẑ_b/T),
//
// averaged over the 2n anchors. A sample whose class appears once in the
// batch has its other view as only positive, so L_a is finite; an anchor
// with no positive at all (impossible with two views) would be left out of
// the mean and get no gradient as an anchor, while still serving as a
// negative. Compute needs Labels (len N, ≥ 0 for valid samples) and gives
// dL/dZ for both views; it ignores Queue and K. Features laid out n×2×d,
// as in the reference code, convert with SplitViews and JoinViews.
//
// Cost: as NTXent, plus (2n)² label comparisons. Not safe for concurrent
// use.
type SupCon struct {
	t float64
	p pairwise
}

var _ Loss = (*SupCon)(nil)

// NewSupCon returns a SupCon loss, or cfg.Validate's error.
func NewSupCon(cfg SupConConfig) (*SupCon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &SupCon{t: orDefault(cfg.Temperature, DefaultSupConTemperature)}
	l.p.team = newTeam(cfg.Workers, &l.p)
	return l, nil
}

// Name returns "supcon".
func (l *SupCon) Name() string { return TypeSupCon }

// Temperature returns the temperature in use.
func (l *SupCon) Temperature() float64 { return l.t }

// Compute implements Loss.
func (l *SupCon) Compute(in Inputs, out *Outputs) error {
	if err := in.Check(TypeSupCon); err != nil {
		return err
	}
	if len(in.Labels) != in.N {
		return fmt.Errorf("loss supcon: %d labels for N = %d samples", len(in.Labels), in.N)
	}
	for i, y := range in.Labels[:in.ValidN()] {
		if y < 0 {
			return fmt.Errorf("loss supcon: sample %d of the batch has no label (%d); supcon needs a labelled dataset", i, y)
		}
	}
	return l.p.computeViews(&in, l.t, in.Labels, out)
}
