package loss

// TypeNTXent is NTXent's name, as Config.Type and Loss.Name spell it.
const TypeNTXent = "ntxent"

// DefaultNTXentTemperature is NTXent's default temperature, SimCLR's.
const DefaultNTXentTemperature = 0.5

func init() {
	Register(Kind{
		Name:               TypeNTXent,
		Doc:                "SimCLR's NT-Xent: each of the 2N views against its other view and the other 2N−2",
		DefaultTemperature: DefaultNTXentTemperature,
		New: func(c Config) (Loss, error) {
			return NewNTXent(NTXentConfig{Temperature: c.Temperature, Workers: c.Workers})
		},
		MemoryBytes: func(_ Config, n, d, _ int) int64 { return pairwiseMemoryBytes(n, d) },
	})
}

// NTXentConfig configures NTXent. Its zero value is SimCLR's T = 0.5.
type NTXentConfig struct {
	// Temperature divides the cosine similarities, ≥ MinTemperature.
	// nil means the default, 0.5; 0 is an error.
	Temperature *float64 `yaml:"temperature"`
	// Workers is the number of goroutines a call may use, at most
	// MaxWorkers. Default runtime.GOMAXPROCS(0) at construction. The
	// results do not depend on it.
	Workers int `yaml:"workers"`
}

// Validate returns a *pipeline.FieldError naming "temperature" when it is
// set but not a finite number ≥ MinTemperature (0 included), or
// "workers" when it is out of range.
func (c NTXentConfig) Validate() error {
	if err := validateTemperature(c.Temperature); err != nil {
		return err
	}
	return validateWorkers(c.Workers)
}

// NTXent is SimCLR's normalised-temperature cross-entropy over the 2n views
// of a batch: each of the 2n anchors has its other view as positive and the
// other 2n−2 views as negatives (itself excluded), and the loss is the mean
// over the 2n anchors of
//
//	−log exp(ẑ_a·ẑ_p/T) / Σ_{b≠a} exp(ẑ_a·ẑ_b/T),
//
// ẑ the L2-normalised embeddings. Compute gives dL/dZ for both views and
// ignores Labels, Queue and K.
//
// Cost per call for n samples of size d: about 2·(2n)²·d multiply-adds
// (forward and backward) and (2n)² exponentials, split over Workers
// goroutines (for n = 256, d = 128 on this project's 2-core machine: 18 ms
// on one, 10 ms on two), and float64 scratch of (2n)² + 10·n·d values kept
// between calls (4.7 MB there). Not safe for concurrent use.
type NTXent struct {
	t float64
	p pairwise
}

var _ Loss = (*NTXent)(nil)

// NewNTXent returns an NT-Xent loss, or cfg.Validate's error.
func NewNTXent(cfg NTXentConfig) (*NTXent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &NTXent{t: orDefault(cfg.Temperature, DefaultNTXentTemperature)}
	l.p.team = newTeam(cfg.Workers, &l.p)
	return l, nil
}

// Name returns "ntxent".
func (l *NTXent) Name() string { return TypeNTXent }

// Temperature returns the temperature in use.
func (l *NTXent) Temperature() float64 { return l.t }

// Compute implements Loss.
func (l *NTXent) Compute(in Inputs, out *Outputs) error {
	if err := in.Check(TypeNTXent); err != nil {
		return err
	}
	return l.p.computeViews(&in, l.t, nil, out)
}
