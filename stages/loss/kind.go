package loss

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
)

// Kind is a loss as Config.Type names it: how to build it, its default
// temperature, what it needs from the training flow and what it keeps in
// memory. Each loss registers its Kind with Register from an init function
// in its own file (infonce.go, ntxent.go, supcon.go, crossentropy.go), and Config, New,
// MemoryBytes and the training flows look it up by name and hold no list
// of losses: a new loss is one new file plus its test (see
// Example_register).
type Kind struct {
	// Name is the Config.Type that selects the loss, and what its Loss's
	// Name returns: "ntxent".
	Name string
	// Doc says in a line what the loss is, for help texts.
	Doc string
	// DefaultTemperature is the temperature when the flow leaves it out,
	// ≥ MinTemperature; 0 means the loss has no temperature, and
	// Config.Validate refuses one.
	DefaultTemperature float64
	// Needs is what the loss reads beyond the two views' embeddings,
	// which the training flow must provide.
	Needs Needs
	// Views is how many views' embeddings the loss reads: 2 (0 means 2),
	// Z[0] and Z[1], as every contrastive loss; or 1, Z[0] alone (a
	// classifier's logits: crossentropy), when Z[1] is not read and may
	// be empty, and Grad[1] comes back empty. The training flows check it
	// against the encode stage's views.
	Views int
	// New builds the loss of c, which Config.Validate has accepted, with
	// c.Type set to Name and, for a loss with a temperature, c.Temperature
	// set (to DefaultTemperature when the flow left it out).
	New func(c Config) (Loss, error)
	// MemoryBytes estimates what the loss keeps between calls (its
	// scratch) for batches of n samples with embeddings of d values and,
	// where it needs one, a queue of k keys. Config.MemoryBytes adds the
	// loss stage's own buffers. nil means the loss keeps nothing.
	MemoryBytes func(c Config, n, d, k int) int64
}

// Needs are what a loss reads beyond the two views' embeddings (Inputs.Z),
// which the training flow must provide; the zero value is nothing more.
type Needs struct {
	// Labels: the loss reads Inputs.Labels, so the source's dataset must
	// be labelled (as SupCon).
	Labels bool
	// Queue: the loss takes its negatives from Inputs.Queue, so a queue
	// stage (fed by a key encoder) must come before it (as InfoNCE).
	Queue bool
}

// DefaultType is the loss of a Config whose Type is empty: InfoNCE, MoCo
// v2's.
const DefaultType = TypeInfoNCE

// kinds is the registry of Register, by name.
var kinds struct {
	sync.RWMutex
	by map[string]Kind
}

// Register makes k known to Config, New and MemoryBytes under k.Name. It
// panics if the name is empty or already registered, if New is nil, if
// DefaultTemperature is neither 0 nor a finite number ≥ MinTemperature,
// or if Views is not 0, 1 or 2: registration happens in init functions,
// where these are programming errors. It is safe for concurrent use.
func Register(k Kind) {
	switch t := k.DefaultTemperature; {
	case k.Name == "":
		panic("loss: Register: a loss needs a name")
	case k.New == nil:
		panic(fmt.Sprintf("loss: Register: loss %q has no New", k.Name))
	case t != 0 && !(t >= MinTemperature && !math.IsInf(t, 0)):
		panic(fmt.Sprintf("loss: Register: loss %q: default temperature %g, want 0 (none) or a finite number ≥ %g", k.Name, t, MinTemperature))
	case k.Views < 0 || k.Views > 2:
		panic(fmt.Sprintf("loss: Register: loss %q reads %d views, want 1 or 2 (0: 2)", k.Name, k.Views))
	}
	kinds.Lock()
	defer kinds.Unlock()
	if _, dup := kinds.by[k.Name]; dup {
		panic(fmt.Sprintf("loss: Register: loss %q registered twice", k.Name))
	}
	if kinds.by == nil {
		kinds.by = map[string]Kind{}
	}
	kinds.by[k.Name] = k
}

// Lookup returns the registered loss called name ("" is DefaultType).
func Lookup(name string) (Kind, bool) {
	if name == "" {
		name = DefaultType
	}
	kinds.RLock()
	defer kinds.RUnlock()
	k, ok := kinds.by[name]
	return k, ok
}

// Kinds returns the registered losses sorted by name: "crossentropy",
// "infonce", "ntxent", "supcon" and any registered since.
func Kinds() []Kind {
	kinds.RLock()
	defer kinds.RUnlock()
	ks := make([]Kind, 0, len(kinds.by))
	for _, k := range kinds.by {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b Kind) int { return strings.Compare(a.Name, b.Name) })
	return ks
}

// Names returns the names of the registered losses in sorted order.
func Names() []string {
	var ns []string
	for _, k := range Kinds() {
		ns = append(ns, k.Name)
	}
	return ns
}

// NeedingNothing returns, sorted, the names of the registered two-view
// losses that need nothing beyond the embeddings (Needs{}): those that any
// contrastive training flow can use, to suggest when a flow cannot provide
// what a loss needs. With the built-in losses alone that is "ntxent".
func NeedingNothing() []string {
	var ns []string
	for _, k := range Kinds() {
		if k.Needs == (Needs{}) && k.ReadViews() == 2 {
			ns = append(ns, k.Name)
		}
	}
	return ns
}

// ReadViews is how many views' embeddings the loss reads, 1 or 2: Views
// with its default.
func (k Kind) ReadViews() int {
	if k.Views == 0 {
		return 2
	}
	return k.Views
}

// orList joins the quoted names as "a", "a" or "b" and "a", "b" or "c".
func orList(names []string) string {
	qs := make([]string, len(names))
	for i, n := range names {
		qs[i] = fmt.Sprintf("%q", n)
	}
	if len(qs) <= 1 {
		return strings.Join(qs, "")
	}
	return strings.Join(qs[:len(qs)-1], ", ") + " or " + qs[len(qs)-1]
}

// satAdd returns a + b, or math.MaxInt64 when that overflows (both are ≥
// 0).
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// saturate converts v (≥ 0) to int64, math.MaxInt64 when it is too large.
func saturate(v float64) int64 {
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
