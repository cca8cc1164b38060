package pipeline

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Role says where a stage kind may stand in a flow.
type Role int

// The roles of stage kinds. The zero Role is no role at all, so that a Kind
// whose Role was forgotten is refused by Register.
const (
	RoleSource Role = iota + 1 // first in a flow; reads no elements
	RoleStage                  // in the middle; reads and writes elements
	RoleSink                   // last in a flow; writes no elements
)

// String returns "source", "stage" or "sink".
func (r Role) String() string {
	switch r {
	case RoleSource:
		return "source"
	case RoleStage:
		return "stage"
	case RoleSink:
		return "sink"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// section is the top-level field of a spec where kinds of role r stand.
func (r Role) section() string {
	switch r {
	case RoleSource:
		return "source"
	case RoleStage:
		return "stages"
	case RoleSink:
		return "sinks"
	}
	return r.String()
}

// AnyElement as a Kind's Accepts matches whatever the stage before it
// produces; as its Produces it matches whatever the stage after it accepts.
// Generic kinds (the discard sink, a prefetch buffer) use it.
const AnyElement = "any"

// Kind describes one kind of stage that a flow spec can name: how to decode
// its parameters and how to build it.
//
// A Kind is a value; once registered it must not change.
type Kind struct {
	// Name is what a spec writes as kind: "dataset", "augment", "collate".
	// It is made of letters, digits, '_' and '-', and starts with a letter.
	Name string
	// Role says where the kind may stand in a flow.
	Role Role
	// Doc is one line that says what the kind does, for listings.
	Doc string
	// Accepts is the element type the kind reads ("sample", "pair",
	// "batch", or AnyElement); "" for sources.
	Accepts string
	// Produces is the element type the kind writes; "" for sinks.
	Produces string
	// NewConfig returns a pointer to a new zero config struct, whose zero
	// value means the defaults. Its fields carry `yaml:"snake_name"` tags
	// (the names "name" and "kind" are taken by the spec) and a doc comment
	// that states the default. If the config has a method Validate() error,
	// the spec calls it before anything is built; it may return a *FieldError
	// to name the offending field. NewConfig is nil for a kind without
	// parameters.
	NewConfig func() any
	// Build makes the stage from a config returned by NewConfig and filled
	// from the spec (nil when NewConfig is nil).
	Build func(cfg any, env BuildEnv) (Stage, error)
}

// BuildEnv is what every stage may need from the flow it is built for.
// Stages report bad samples with ReportSkip on the context they run under,
// which carries the Skips of the Flow that runs them.
type BuildEnv struct {
	// Seed is the flow's seed; everything random derives from it.
	Seed int64
	// Epochs is the number of passes over the dataset, at least 1.
	Epochs int
}

// What the stages of one flow share beyond BuildEnv (a training step's
// encoder, optimizer and sinks) is typed, never looked up by name: a
// builder such as package flows registers, for each flow it builds, kinds
// whose Build functions close over that flow's typed parts, in a registry
// of its own (see Registry.With).

// Registry maps kind names to Kinds. It is safe for concurrent use. The
// zero Registry is not usable; make one with NewRegistry.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: make(map[string]Kind)} }

// DefaultRegistry holds the kinds that contrastream's packages register in
// their init functions.
var DefaultRegistry = NewRegistry()

// Register adds k to DefaultRegistry. It panics if k is malformed or its
// name is taken, and is meant for init functions.
func Register(k Kind) {
	if err := DefaultRegistry.Register(k); err != nil {
		panic(err)
	}
}

var kindNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// Register adds k. It returns an error if a kind of the same name is already
// registered or if k is malformed: a bad name, no role, no Build, element
// types missing for its role, or a NewConfig that does not return a pointer
// to a struct.
func (r *Registry) Register(k Kind) error {
	if err := checkKind(k); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.kinds[k.Name]; ok {
		return fmt.Errorf("pipeline: stage kind %q is already registered", k.Name)
	}
	r.kinds[k.Name] = k
	return nil
}

func checkKind(k Kind) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("pipeline: stage kind %q: "+format, append([]any{k.Name}, args...)...)
	}
	if !kindNameRE.MatchString(k.Name) {
		return bad("name must be letters, digits, '_' or '-', starting with a letter")
	}
	if k.Build == nil {
		return bad("no Build function")
	}
	switch k.Role {
	case RoleSource:
		if k.Accepts != "" || k.Produces == "" {
			return bad("a source accepts nothing and must say what it produces")
		}
	case RoleStage:
		if k.Accepts == "" || k.Produces == "" {
			return bad("a stage must say what it accepts and what it produces")
		}
	case RoleSink:
		if k.Accepts == "" || k.Produces != "" {
			return bad("a sink must say what it accepts and produces nothing")
		}
	default:
		return bad("no role (want RoleSource, RoleStage or RoleSink)")
	}
	if k.NewConfig == nil {
		return nil
	}
	cfg := k.NewConfig()
	t := reflect.TypeOf(cfg)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct || reflect.ValueOf(cfg).IsNil() {
		return bad("NewConfig must return a non-nil pointer to a struct, got %T", cfg)
	}
	fi, err := structFields(t.Elem())
	if err != nil {
		return bad("config %s: %v", t, err)
	}
	for _, reserved := range []string{"name", "kind"} {
		if _, ok := fi.fields[reserved]; ok {
			return bad("config %s: field %q is reserved for the spec", t, reserved)
		}
	}
	return nil
}

// With returns a new registry that holds r's kinds, each of kinds in
// place of r's kind of the same name (or added, where r has none). A
// builder uses it to bind kinds to the typed parts of one flow: package
// flows registers its training kinds in DefaultRegistry for specs to be
// checked against, and builds each training flow with a registry whose
// kinds share that flow's encoder, optimizer and sinks. r is unchanged.
func (r *Registry) With(kinds ...Kind) (*Registry, error) {
	out := NewRegistry()
	for _, k := range r.Kinds() {
		out.kinds[k.Name] = k
	}
	for _, k := range kinds {
		if err := checkKind(k); err != nil {
			return nil, err
		}
		if old, ok := out.kinds[k.Name]; ok && (old.Role != k.Role || old.Accepts != k.Accepts || old.Produces != k.Produces) {
			return nil, fmt.Errorf("pipeline: stage kind %q: a replacement must keep the role and elements of the kind it replaces", k.Name)
		}
		out.kinds[k.Name] = k
	}
	return out, nil
}

// Lookup returns the kind called name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.kinds[name]
	return k, ok
}

// Kinds returns every registered kind, sorted by name.
func (r *Registry) Kinds() []Kind {
	r.mu.RLock()
	ks := make([]Kind, 0, len(r.kinds))
	for _, k := range r.kinds {
		ks = append(ks, k)
	}
	r.mu.RUnlock()
	sort.Slice(ks, func(i, j int) bool { return ks[i].Name < ks[j].Name })
	return ks
}

// names lists the names of the kinds of role (any role if 0), sorted and
// comma-separated, for error messages.
func (r *Registry) names(role Role) string {
	var ns []string
	for _, k := range r.Kinds() {
		if role == 0 || k.Role == role {
			ns = append(ns, k.Name)
		}
	}
	if len(ns) == 0 {
		return "none registered"
	}
	return strings.Join(ns, ", ")
}
