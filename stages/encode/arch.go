package encode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	G "gorgonia.org/gorgonia"
)

// Arch is an encoder architecture: its backbone, the network from the
// images to the features. The projection head (head.0 Linear(Features,
// Hidden), ReLU, head.2 Linear(Hidden, Out)) is every architecture's, and
// NewWeights and NewReplica add it.
//
// Each architecture registers itself with RegisterArch from an init
// function in its own file (convnet.go, resnet.go, vit.go), and
// Config.Arch names it: Config, NewWeights, NewReplica, the Pool and the
// memory estimates look it up and hold no list of architectures. Build
// takes the package's graph builder and Params and Count its internal
// types, so an architecture is written inside package encode: one new
// file plus its test (see ExampleRegisterArch). An architecture without
// options of its own embeds archBase, which implements Fields, Defaults,
// Validate and CheckInput for it.
//
// The methods are called with a Config that Validate has accepted and,
// except for Validate, with its defaults filled in (Config.WithDefaults);
// an Arch must be safe for concurrent use (the built-in ones hold no
// state).
type Arch interface {
	// Name is the Config.Arch value that selects the architecture:
	// "resnet18".
	Name() string
	// Fields lists the architecture-specific fields of Config that it
	// reads, by their YAML names ("width", "patch", "depth", "heads",
	// "mlp"); Config.Validate refuses the others when they are set.
	Fields() []string
	// Defaults returns c with the zero values of its fields replaced by
	// their defaults.
	Defaults(c Config) Config
	// Validate reports the first impossible value of its fields as a
	// *pipeline.FieldError, before defaults are filled in.
	Validate(c Config) error
	// CheckInput reports, as a *pipeline.FieldError, why the encoder of c
	// cannot take images of in (which Input.Validate has accepted), or nil.
	CheckInput(c Config, in Input) error
	// Features is the size of the backbone's output, the features.
	Features(c Config) int
	// Params appends the backbone's parameters and buffers (BatchNorm
	// running statistics), freshly initialised by ini, to w.Params and
	// w.Buffers in state_dict order; w.Config() is c. Their names are the
	// safetensors names of checkpoints.
	Params(w *Weights, in Input, ini initer)
	// Build adds the backbone to a replica's graph on x, the N×C×H×W
	// input, and returns the features, an N×Features node. It reads the
	// parameters' nodes and the running statistics by name from nb.
	Build(nb *netBuilder, x *act, c Config) (*G.Node, error)
	// Count returns the backbone's buffers and parameters on in, for the
	// memory estimates (memory.go): what each op of the backbone keeps
	// per image and per replica, and its parameter count.
	Count(c Config, in Input) layerCounts
}

// archBase gives an architecture without options of its own the methods
// of Arch about options: no fields, no defaults, nothing to validate, any
// input that Input.Validate accepts.
type archBase struct{}

func (archBase) Fields() []string               { return nil }
func (archBase) Defaults(c Config) Config       { return c }
func (archBase) Validate(Config) error          { return nil }
func (archBase) CheckInput(Config, Input) error { return nil }

// headIniter is implemented by an architecture whose head is not
// initialised as PyTorch's Linear (weight and bias uniform in ±1/√fanIn),
// such as vit.
type headIniter interface {
	// initHead initialises one Linear of the head, of fanIn inputs.
	initHead(weight, bias *Tensor, fanIn int, ini initer)
}

// initer draws parameters' initial values from NewWeights's random source,
// in the order of the calls.
type initer struct {
	rng *rand.Rand
}

// uniform fills t uniform in ±1/√fanIn: PyTorch's default for the
// weights of Conv2d and Linear (Kaiming uniform with a = √5) and for their
// biases.
func (ini initer) uniform(t *Tensor, fanIn int) {
	b := 1 / math.Sqrt(float64(fanIn))
	for i := range t.Data {
		t.Data[i] = float32((2*ini.rng.Float64() - 1) * b)
	}
}

// gap adds the global average pool of x: the n×c features of a
// convolutional backbone.
func (nb *netBuilder) gap(x *act) *G.Node {
	return G.Must(G.ApplyOp(newGAPOp("features", nb.st, nb.n, x.c, x.h, x.w), x.node))
}

// archs is the registry of RegisterArch, by name.
var archs struct {
	sync.RWMutex
	by map[string]Arch
}

// RegisterArch makes a known to Config, NewWeights and NewReplica under
// a.Name(). It panics if the name is empty or already registered:
// registration happens in init functions, where a clash is a programming
// error. It is safe for concurrent use.
func RegisterArch(a Arch) {
	name := a.Name()
	archs.Lock()
	defer archs.Unlock()
	if name == "" {
		panic("encode: RegisterArch: an architecture needs a name")
	}
	if _, dup := archs.by[name]; dup {
		panic(fmt.Sprintf("encode: RegisterArch: architecture %q registered twice", name))
	}
	if archs.by == nil {
		archs.by = map[string]Arch{}
	}
	archs.by[name] = a
}

// ArchNames lists the registered architectures' names in sorted order:
// "convnet-s", "resnet18", "vit" and any registered since.
func ArchNames() []string {
	archs.RLock()
	defer archs.RUnlock()
	ns := make([]string, 0, len(archs.by))
	for n := range archs.by {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// lookupArch returns the architecture called name ("" is DefaultArch).
func lookupArch(name string) (Arch, bool) {
	if name == "" {
		name = DefaultArch
	}
	archs.RLock()
	defer archs.RUnlock()
	a, ok := archs.by[name]
	return a, ok
}

// archsReading lists, joined by ", " and " and ", the names of the
// architectures whose Fields include field.
func archsReading(field string) string {
	var ns []string
	for _, n := range ArchNames() {
		if a, _ := lookupArch(n); slices.Contains(a.Fields(), field) {
			ns = append(ns, n)
		}
	}
	if len(ns) < 2 {
		return strings.Join(ns, "")
	}
	return strings.Join(ns[:len(ns)-1], ", ") + " and " + ns[len(ns)-1]
}
