package pipeline

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Spec is a flow as its YAML document declares it: a source, stages with
// their parameters, and sinks, plus what the whole flow shares.
//
// ParseSpec makes a Spec that has been checked; a Spec assembled in Go is
// checked by Validate and by Build. A Spec is plain data and not safe for
// concurrent mutation.
//
// The YAML shape puts each stage's parameters beside its kind and name
// (the kinds here are those that package flows registers):
//
//	name: data
//	seed: 1
//	epochs: 2
//	max_bad_samples: 10
//	max_memory: 16GiB
//	source: {kind: dataset, path: data/train.parquet, order: shuffle}
//	stages:
//	  - kind: augment
//	    workers: 2
//	    crop: {scale: [0.3, 1.0]}
//	    flip_p: 0.5
//	  - {kind: collate, batch_size: 256, last: drop}
//	sinks:
//	  - {kind: discard}
type Spec struct {
	// Name names the flow in logs and checkpoints. Default "".
	Name string
	// Description says what the flow is for. Default "".
	Description string
	// Seed is what everything random derives from. Default 0.
	Seed int64
	// Epochs is the number of passes over the dataset, at least 1.
	// Default 1.
	Epochs int
	// MaxBadSamples is how many bad samples the flow skips before it stops;
	// -1 means no limit. Default 0: the first bad sample is fatal.
	MaxBadSamples int
	// MaxMemory is the most memory the flow may be estimated to need
	// before it runs (YAML max_memory: a size such as 16GiB or 800MB, or
	// -1 for no limit); a flow over it is refused with the estimate (see
	// flows.PlanOf). nil, the field left out, means the default: 90% of
	// the machine's memory, or of its cgroup's limit when lower. 0 is an
	// error, not the default.
	MaxMemory *Bytes
	// Source is the stage that reads the dataset. Required.
	Source StageSpec
	// Stages are the stages between the source and the sinks, in order.
	Stages []StageSpec
	// Sinks all receive what the last stage produces.
	Sinks []StageSpec
}

// StageSpec is one stage of a Spec.
type StageSpec struct {
	// Name is unique in the flow; overrides and metrics use it. It defaults
	// to Kind, so two stages of one kind need a name.
	Name string `yaml:"name"`
	// Kind is the name of a registered Kind.
	Kind string `yaml:"kind"`
	// Config is the Kind's config: a pointer as its NewConfig returns,
	// filled from the spec's parameters; nil for a kind without parameters.
	// In a Spec assembled in Go, nil means the defaults.
	Config any `yaml:"-"`
}

// NamedStage is a built stage with the name, kind and role it has in its
// flow, in the order source, stages, sinks.
type NamedStage struct {
	// Name is the stage's name in the spec (its kind when it has none).
	Name string
	// Kind is the name of the stage's Kind.
	Kind string
	// Role says whether it is the source, a stage or a sink.
	Role Role
	// Stage is what the Kind's Build returned.
	Stage Stage
}

// FieldError is what a config's Validate method returns to say which field
// is wrong; the spec prefixes Field with the stage's path and points at the
// field's line. Field is the field's YAML name, or a dotted path to a
// nested one ("jitter.brightness", "crop.scale[1]").
type FieldError struct {
	// Field is the YAML name of the offending field, or a dotted path.
	Field string
	// Msg says what is wrong with it.
	Msg string
}

// Error returns "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// fieldMsg is a FieldError's message without its field, which the
// SpecError's Path names; it unwraps to the error Validate returned.
type fieldMsg struct {
	msg string
	err error
}

func (e *fieldMsg) Error() string { return e.msg }
func (e *fieldMsg) Unwrap() error { return e.err }

// SpecError is an error in a flow spec, with where it is. ParseSpec,
// Spec.Validate and Spec.Build return their errors as *SpecError.
type SpecError struct {
	// File is the spec's file name, "" when there is none.
	File string
	// Line is the line of the offending text, 0 when unknown.
	Line int
	// Set is the override ("stages.collate.batch_size=0") that supplied the
	// offending value, "" when it came from the file.
	Set string
	// Path names the field: "epochs", "stages[0] (augment).crop.scale".
	Path string
	// Err says what is wrong.
	Err error
}

// Error returns "file:line: path: message", or "--set override: path:
// message" when an override supplied the value.
func (e *SpecError) Error() string {
	var b strings.Builder
	switch {
	case e.Set != "":
		b.WriteString("--set " + e.Set + ": ")
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Err.
func (e *SpecError) Unwrap() error { return e.Err }

// Defaulter is implemented by configs that can say what their zero fields
// mean. WithDefaults returns a config of the same type with every default
// filled in, without changing the receiver. Spec.YAML writes that, so that
// a spec recorded in a checkpoint keeps its meaning when defaults change.
type Defaulter interface {
	WithDefaults() any
}

// specFields are the top-level fields of a spec, in the order YAML writes
// them.
var specFields = []string{"name", "description", "seed", "epochs", "max_bad_samples", "max_memory", "source", "stages", "sinks"}

var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// MaxSpecBytes is the largest flow spec ParseSpec and ReadSpecFile take:
// 1 MiB. A real flow is a few KB, and every checkpoint's state.json
// records it again, so a larger file is a mistake (the wrong file, or a
// generated one run away), refused before it is read whole.
const MaxSpecBytes = 1 << 20

// errSpecTooLarge says that a spec of size bytes (or more, when atLeast)
// is over MaxSpecBytes.
func errSpecTooLarge(file string, size int64, atLeast bool) error {
	more := ""
	if atLeast {
		more = "more than "
	}
	return &SpecError{File: file, Err: fmt.Errorf("the flow spec is %s%d bytes, over the limit of %d bytes (1 MiB; a flow is a few KB): is this the right file?", more, size, MaxSpecBytes)}
}

// ReadSpecFile reads the flow spec file path, refusing one over
// MaxSpecBytes with a *SpecError that gives its size and the limit. It
// reads at most MaxSpecBytes+1 bytes, whatever the file's size.
func ReadSpecFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxSpecBytes {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxSpecBytes {
			return nil, errSpecTooLarge(path, st.Size(), false)
		}
		return nil, errSpecTooLarge(path, MaxSpecBytes, true) // a pipe, or a file still growing
	}
	return data, nil
}

// ParseSpec reads a flow spec from data, applies overrides ("path=value",
// see ApplyOverrides) and checks it before anything runs: top-level fields,
// stage kinds and their places, each stage's parameters (decoded strictly
// into its Kind's config), each config's Validate method, unique stage
// names, and the element types between neighbours. file names data in
// error messages. reg nil means DefaultRegistry.
//
// The error is one *SpecError naming the file, line and field:
//
//	flow.yaml:10: stages[0] (augment).crop.scale: cannot use "abc" as [2]float64
//
// data over MaxSpecBytes is refused, unparsed.
func ParseSpec(data []byte, file string, reg *Registry, overrides []string) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, errSpecTooLarge(file, int64(len(data)), false)
	}
	if reg == nil {
		reg = DefaultRegistry
	}
	p := &specParser{file: file, reg: reg, sets: make(map[*yaml.Node]string), pos: make(map[string]specPlace), active: make(map[*yaml.Node]bool)}
	doc, err := p.read(data)
	if err != nil {
		return nil, err
	}
	if err := applyOverrides(doc, overrides, p.sets); err != nil {
		return nil, p.fileErr(err)
	}
	p.budget = 10*countNodes(doc, 0) + 10000
	s, err := p.spec(doc.Content[0])
	if err != nil {
		return nil, err
	}
	if err := s.check(reg, p); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks a spec as ParseSpec does after decoding: kinds and their
// places, config types, each config's Validate method, unique stage names
// and the element types between neighbours. reg nil means DefaultRegistry.
func (s *Spec) Validate(reg *Registry) error {
	if reg == nil {
		reg = DefaultRegistry
	}
	return s.check(reg, nil)
}

// Env returns the BuildEnv of the spec: its seed and epochs. (Its limit of
// bad samples belongs to the Flow that runs the stages: Options.MaxBadSamples.)
func (s *Spec) Env() BuildEnv {
	return BuildEnv{Seed: s.Seed, Epochs: s.Epochs}
}

// Build validates the spec and builds its stages in order: the source, the
// stages, then the sinks. A nil Config builds the kind's defaults. reg nil
// means DefaultRegistry. env is passed to every Kind's Build as it is; Env
// makes one from the spec.
func (s *Spec) Build(reg *Registry, env BuildEnv) ([]NamedStage, error) {
	if reg == nil {
		reg = DefaultRegistry
	}
	if err := s.check(reg, nil); err != nil {
		return nil, err
	}
	var out []NamedStage
	for _, ref := range s.refs() {
		k, _ := reg.Lookup(ref.ss.Kind)
		cfg := configFor(k, ref.ss.Config)
		st, err := k.Build(cfg, env)
		if err == nil && st == nil {
			err = errors.New("Build returned no stage")
		}
		if err != nil {
			return nil, &SpecError{Path: ref.label(), Err: err}
		}
		out = append(out, NamedStage{Name: ref.name(), Kind: ref.ss.Kind, Role: k.Role, Stage: st})
	}
	return out, nil
}

// configFor returns the config to build k with: cfg as a pointer, or the
// defaults when cfg is nil.
func configFor(k Kind, cfg any) any {
	if k.NewConfig == nil {
		return nil
	}
	if cfg == nil {
		return k.NewConfig()
	}
	if v := reflect.ValueOf(cfg); v.Kind() != reflect.Pointer {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		return p.Interface()
	}
	return cfg
}

// YAML returns the spec as a normalised YAML document: every top-level
// field, every stage's name and kind, and each config as it encodes (with
// its defaults filled in when it is a Defaulter), so that a checkpoint can
// record it. ParseSpec reads it back to a spec that means the same and
// writes the same YAML.
func (s *Spec) YAML() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v *yaml.Node) {
		root.Content = append(root.Content, yamlScalar("!!str", key), v)
	}
	add("name", yamlScalar("!!str", s.Name))
	add("description", yamlScalar("!!str", s.Description))
	add("seed", yamlScalar("!!int", strconv.FormatInt(s.Seed, 10)))
	add("epochs", yamlScalar("!!int", strconv.Itoa(s.Epochs)))
	add("max_bad_samples", yamlScalar("!!int", strconv.Itoa(s.MaxBadSamples)))
	if s.MaxMemory != nil {
		t, _ := s.MaxMemory.MarshalText()
		add("max_memory", yamlScalar("!!str", string(t)))
	}
	var err error
	var src *yaml.Node
	if src, err = stageYAML("source", s.Source); err != nil {
		return nil, err
	}
	add("source", src)
	for _, sec := range []struct {
		name string
		list []StageSpec
	}{{"stages", s.Stages}, {"sinks", s.Sinks}} {
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		if len(sec.list) == 0 {
			seq.Style = yaml.FlowStyle
		}
		for i, ss := range sec.list {
			n, err := stageYAML(fmt.Sprintf("%s[%d]", sec.name, i), ss)
			if err != nil {
				return nil, err
			}
			seq.Content = append(seq.Content, n)
		}
		add(sec.name, seq)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func yamlScalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func stageYAML(path string, ss StageSpec) (*yaml.Node, error) {
	name := ss.Name
	if name == "" {
		name = ss.Kind
	}
	m := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, yamlScalar("!!str", "name"), yamlScalar("!!str", name), yamlScalar("!!str", "kind"), yamlScalar("!!str", ss.Kind))
	cfg := ss.Config
	if d, ok := cfg.(Defaulter); ok {
		cfg = d.WithDefaults()
	}
	if cfg == nil || (reflect.ValueOf(cfg).Kind() == reflect.Pointer && reflect.ValueOf(cfg).IsNil()) {
		return m, nil
	}
	var c yaml.Node
	if err := c.Encode(cfg); err != nil {
		return nil, &SpecError{Path: stageLabel(path, ss.Name, ss.Kind), Err: fmt.Errorf("encoding config: %w", err)}
	}
	if c.Kind != yaml.MappingNode {
		return nil, &SpecError{Path: stageLabel(path, ss.Name, ss.Kind), Err: fmt.Errorf("config %T does not encode as a mapping", cfg)}
	}
	for i := 0; i+1 < len(c.Content); i += 2 {
		if k := c.Content[i].Value; k == "name" || k == "kind" {
			continue
		}
		flowLists(c.Content[i+1])
		m.Content = append(m.Content, c.Content[i], c.Content[i+1])
	}
	return m, nil
}

// flowLists writes lists of scalars on one line: scale: [0.3, 1].
func flowLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
		flat := true
		for _, c := range n.Content {
			flat = flat && c.Kind == yaml.ScalarNode
		}
		if flat {
			n.Style = yaml.FlowStyle
		}
	}
	for _, c := range n.Content {
		flowLists(c)
	}
}

// stageRef is one stage of a spec with where it stands.
type stageRef struct {
	ss   *StageSpec
	role Role
	base string // "source", "stages[3]", "sinks[0]"
}

func (r stageRef) name() string {
	if r.ss.Name != "" {
		return r.ss.Name
	}
	return r.ss.Kind
}

func (r stageRef) label() string { return stageLabel(r.base, r.ss.Name, r.ss.Kind) }

// stageLabel is how errors name a stage: "stages[0] (augment)", or
// "stages[1] (strong: augment)" when its name is not its kind.
func stageLabel(base, name, kind string) string {
	if kind == "" {
		return base
	}
	if name == "" || name == kind {
		return base + " (" + kind + ")"
	}
	return base + " (" + name + ": " + kind + ")"
}

func (s *Spec) refs() []stageRef {
	refs := []stageRef{{&s.Source, RoleSource, "source"}}
	for i := range s.Stages {
		refs = append(refs, stageRef{&s.Stages[i], RoleStage, fmt.Sprintf("stages[%d]", i)})
	}
	for i := range s.Sinks {
		refs = append(refs, stageRef{&s.Sinks[i], RoleSink, fmt.Sprintf("sinks[%d]", i)})
	}
	return refs
}

// check validates a decoded spec. p, when not nil, locates errors in the
// YAML that the spec came from.
func (s *Spec) check(reg *Registry, p *specParser) error {
	if s.Epochs < 1 {
		return p.errAt(p.at("epochs"), "epochs", "must be ≥ 1, got %d", s.Epochs)
	}
	if s.MaxBadSamples < -1 {
		return p.errAt(p.at("max_bad_samples"), "max_bad_samples", "must be ≥ -1 (-1 means no limit), got %d", s.MaxBadSamples)
	}
	if m := s.MaxMemory; m != nil && *m <= 0 && *m != -1 {
		return p.errAt(p.at("max_memory"), "max_memory", "must be a size > 0 (16GiB, 800MB) or -1 for no limit (leave it out for the default, 90%% of the machine's memory), got %d", int64(*m))
	}
	refs := s.refs()
	kinds := make([]Kind, len(refs))
	// Kinds, places and config types.
	for i, r := range refs {
		if r.role == RoleSource && r.ss.Kind == "" {
			return p.errAt(nil, "source", "missing (known source kinds: %s)", reg.names(RoleSource))
		}
		k, err := lookupKind(reg, r.ss.Kind, r.role)
		if err != nil {
			return p.errAt(p.at(r.base+".kind"), r.base+".kind", "%s", err)
		}
		kinds[i] = k
		if err := checkConfigType(k, r.ss.Config); err != nil {
			return p.errAt(p.at(r.base), r.label(), "%s", err)
		}
	}
	// Names.
	seen := make(map[string]string)
	for _, r := range refs {
		name := r.name()
		if !nameRE.MatchString(name) {
			return p.errAt(p.at(r.base+".name"), r.base+".name", "%q is not a valid name (letters, digits, '_' or '-', starting with a letter)", name)
		}
		if other, ok := seen[name]; ok {
			return p.errAt(p.at(r.base), r.label(), "duplicate stage name %q (also %s); give one of them a name:", name, other)
		}
		seen[name] = r.base
	}
	// Ranges.
	for i, r := range refs {
		cfg := configFor(kinds[i], r.ss.Config)
		v, ok := cfg.(interface{ Validate() error })
		if !ok {
			continue
		}
		err := v.Validate()
		if err == nil {
			continue
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			n := p.at(r.base + "." + fe.Field)
			if n == nil {
				n = p.at(r.base)
			}
			return p.wrapAt(n, r.label()+"."+fe.Field, &fieldMsg{fe.Msg, err})
		}
		return p.wrapAt(p.at(r.base), r.label(), err)
	}
	// Neighbours.
	prev, prevKind := refs[0], kinds[0]
	for i := 1; i < len(refs); i++ {
		r, k := refs[i], kinds[i]
		if !elementsMatch(k.Accepts, prevKind.Produces) {
			return p.errAt(p.at(r.base+".kind"), r.label(), "accepts %s, but %s before it produces %s", k.Accepts, prev.label(), prevKind.Produces)
		}
		if r.role == RoleStage {
			prev, prevKind = r, k
		}
	}
	return nil
}

func elementsMatch(accepts, produces string) bool {
	return accepts == produces || accepts == AnyElement || produces == AnyElement
}

// lookupKind finds the kind called name and checks that it may stand where
// role says.
func lookupKind(reg *Registry, name string, role Role) (Kind, error) {
	if name == "" {
		return Kind{}, fmt.Errorf("missing (known %s kinds: %s)", role, reg.names(role))
	}
	k, ok := reg.Lookup(name)
	if !ok {
		var known []string
		for _, k := range reg.Kinds() {
			if k.Role == role {
				known = append(known, k.Name)
			}
		}
		return Kind{}, fmt.Errorf("unknown %s kind %q (known: %s)%s", role, name, reg.names(role), didYouMean(name, known))
	}
	if k.Role != role {
		return Kind{}, fmt.Errorf("%q is a %s kind; it belongs under %s, not %s (known %s kinds: %s)", name, k.Role, k.Role.section(), role.section(), role, reg.names(role))
	}
	return k, nil
}

func checkConfigType(k Kind, cfg any) error {
	if cfg == nil {
		return nil
	}
	if k.NewConfig == nil {
		return fmt.Errorf("kind %s takes no config, got %T", k.Name, cfg)
	}
	want := reflect.TypeOf(k.NewConfig())
	got := reflect.TypeOf(cfg)
	if got != want && got != want.Elem() {
		return fmt.Errorf("config is %s, want %s", got, want)
	}
	if got == want && reflect.ValueOf(cfg).IsNil() {
		return fmt.Errorf("config is a nil %s", got)
	}
	return nil
}

// didYouMean suggests the candidate closest to word, if one is close.
func didYouMean(word string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestD && d < len([]rune(c)) {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 64
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// specParser decodes a spec's YAML tree and remembers where things are.
type specParser struct {
	file   string
	reg    *Registry
	sets   map[*yaml.Node]string // nodes that overrides made → the override
	pos    map[string]specPlace  // "stages[0].crop.scale" → where it is
	active map[*yaml.Node]bool   // nodes being decoded, to catch alias cycles
	visits int
	budget int
}

// specPlace is where a value stands: its key (nil in a list) and the value.
type specPlace struct{ key, val *yaml.Node }

func (p *specParser) mark(path string, key, val *yaml.Node) { p.pos[path] = specPlace{key, val} }

// at returns the node to blame for path: the value when an override set
// it, else its key; nil when nothing is recorded (or p is nil).
func (p *specParser) at(path string) *yaml.Node {
	if p == nil {
		return nil
	}
	pl := p.pos[path]
	if _, ok := p.sets[pl.val]; ok || pl.key == nil {
		return pl.val
	}
	return pl.key
}

// errAt returns a *SpecError about path located at n.
func (p *specParser) errAt(n *yaml.Node, path, format string, args ...any) error {
	return p.wrapAt(n, path, fmt.Errorf(format, args...))
}

func (p *specParser) wrapAt(n *yaml.Node, path string, err error) error {
	e := &SpecError{Path: path, Err: err}
	if p == nil {
		return e
	}
	e.File = p.file
	if n != nil {
		if set, ok := p.sets[n]; ok {
			e.Set = set
		} else {
			e.Line = n.Line
		}
	}
	return e
}

// fileErr adds the file name to an error from the overrides.
func (p *specParser) fileErr(err error) error {
	var se *SpecError
	if errors.As(err, &se) && se.Set == "" && se.File == "" {
		se.File = p.file
	}
	return err
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// read parses data into a document node with one mapping.
func (p *specParser) read(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	doc := new(yaml.Node)
	if err := dec.Decode(doc); err != nil && err != io.EOF {
		return nil, p.syntaxErr(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, p.syntaxErr(err)
	default:
		return nil, &SpecError{File: p.file, Line: next.Line, Err: errors.New("more than one YAML document; a flow spec is one")}
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		doc.Content[0] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line}
	} else if root.Kind != yaml.MappingNode {
		return nil, &SpecError{File: p.file, Line: root.Line, Err: fmt.Errorf("a flow spec is a mapping of %s; got %s", strings.Join(specFields, ", "), describeNode(root))}
	}
	return doc, nil
}

// yamlParserErrors are the messages of yaml.v3's parser (not its scanner),
// whose line numbers it reports counting from 0. TestYAMLMessages pins
// them.
var yamlParserErrors = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxErr rewrites a yaml.v3 syntax error as file:line: message. yaml.v3
// counts the scanner's lines from 1 and the parser's from 0, and leaves out
// the line when it counts 0: the first line either way. TestYAMLMessages
// pins the messages this relies on.
func (p *specParser) syntaxErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &SpecError{File: p.file}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if yamlParserErrors[msg] {
			e.Line++
		}
	} else if !strings.HasPrefix(msg, "unknown anchor") {
		e.Line = 1
	}
	e.Err = errors.New(msg)
	return e
}

// countNodes counts the nodes of the tree under n, aliases not followed.
func countNodes(n *yaml.Node, depth int) int {
	if n == nil || depth > 20000 {
		return 0
	}
	c := 1
	for _, k := range n.Content {
		c += countNodes(k, depth+1)
	}
	return c
}

// enter follows an alias, counts the visit and guards against cycles. Call
// leave with the node it returns when done with it.
func (p *specParser) enter(n *yaml.Node, path string) (*yaml.Node, error) {
	p.visits++
	if p.visits > p.budget {
		return nil, p.errAt(n, path, "aliases expand to too many values")
	}
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			return nil, p.errAt(n, path, "bad alias *%s", n.Value)
		}
		n = n.Alias
	}
	if p.active[n] {
		return nil, p.errAt(n, path, "alias refers to a value that contains it")
	}
	p.active[n] = true
	return n, nil
}

func (p *specParser) leave(n *yaml.Node) { delete(p.active, n) }

type yamlPair struct{ key, val *yaml.Node }

// pairs returns the key-value pairs of mapping m with merge keys (<<)
// resolved: explicit keys first, then merged ones that are not set yet.
// Duplicate explicit keys are an error.
func (p *specParser) pairs(m *yaml.Node, path string) ([]yamlPair, error) {
	var out []yamlPair
	seen := make(map[string]*yaml.Node)
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, p.errAt(k, path, "a key must be a plain name, got %s", describeNode(k))
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			return nil, p.errAt(k, joinPath(path, k.Value), "duplicate key (also on line %d)", prev.Line)
		}
		seen[k.Value] = k
		out = append(out, yamlPair{k, v})
	}
	for _, mv := range merges {
		mv, err := p.enter(mv, path)
		if err != nil {
			return nil, err
		}
		var sources []*yaml.Node
		switch mv.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{mv}
		case yaml.SequenceNode:
			sources = mv.Content
		default:
			p.leave(mv)
			return nil, p.errAt(mv, path, "<< merges a mapping or a list of mappings, got %s", describeNode(mv))
		}
		for _, src := range sources {
			if src != mv {
				if src, err = p.enter(src, path); err != nil {
					p.leave(mv)
					return nil, err
				}
			}
			if src.Kind != yaml.MappingNode {
				p.leave(src)
				p.leave(mv)
				return nil, p.errAt(src, path, "<< merges a mapping or a list of mappings, got %s", describeNode(src))
			}
			merged, err := p.pairs(src, path)
			if src != mv {
				p.leave(src)
			}
			if err != nil {
				p.leave(mv)
				return nil, err
			}
			for _, kv := range merged {
				if _, ok := seen[kv.key.Value]; !ok {
					seen[kv.key.Value] = kv.key
					out = append(out, kv)
				}
			}
		}
		p.leave(mv)
	}
	return out, nil
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	if field == "" {
		return path
	}
	return path + "." + field
}

// describeNode names a node's value for error messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := []rune(n.Value)
	if len(v) > 40 {
		return strconv.Quote(string(v[:40]) + "…")
	}
	return strconv.Quote(n.Value)
}

// stageSite is a stage being decoded.
type stageSite struct {
	ref  stageRef
	node *yaml.Node
	kind Kind
}

// spec decodes the top-level mapping.
func (p *specParser) spec(root *yaml.Node) (*Spec, error) {
	s := &Spec{Epochs: 1}
	root, err := p.enter(root, "")
	if err != nil {
		return nil, err
	}
	defer p.leave(root)
	kvs, err := p.pairs(root, "")
	if err != nil {
		return nil, err
	}
	var source, stages, sinks *yaml.Node
	top := decodeCtx{}
	for _, kv := range kvs {
		key := kv.key.Value
		p.mark(key, kv.key, kv.val)
		var err error
		switch key {
		case "name":
			err = p.decode(kv.val, reflect.ValueOf(&s.Name).Elem(), top, key)
		case "description":
			err = p.decode(kv.val, reflect.ValueOf(&s.Description).Elem(), top, key)
		case "seed":
			err = p.decode(kv.val, reflect.ValueOf(&s.Seed).Elem(), top, key)
		case "epochs":
			err = p.decode(kv.val, reflect.ValueOf(&s.Epochs).Elem(), top, key)
			if isNull(kv.val) {
				s.Epochs = 1
			}
		case "max_bad_samples":
			err = p.decode(kv.val, reflect.ValueOf(&s.MaxBadSamples).Elem(), top, key)
		case "max_memory":
			err = p.decode(kv.val, reflect.ValueOf(&s.MaxMemory).Elem(), top, key)
		case "source":
			source = kv.val
		case "stages":
			stages = kv.val
		case "sinks":
			sinks = kv.val
		default:
			err = p.errAt(kv.key, "", "unknown field %q (known: %s)%s", key, strings.Join(specFields, ", "), didYouMean(key, specFields))
		}
		if err != nil {
			return nil, err
		}
	}
	// Stage kinds and their places.
	var sites []stageSite
	if source == nil || isNull(source) {
		return nil, p.errAt(nil, "", "missing source (known source kinds: %s)", p.reg.names(RoleSource))
	}
	site, err := p.header(source, stageRef{&s.Source, RoleSource, "source"})
	if err != nil {
		return nil, err
	}
	sites = append(sites, site)
	for _, sec := range []struct {
		node *yaml.Node
		list *[]StageSpec
		role Role
	}{{stages, &s.Stages, RoleStage}, {sinks, &s.Sinks, RoleSink}} {
		if sec.node == nil {
			continue
		}
		name := sec.role.section()
		seq, err := p.enter(sec.node, name)
		if err != nil {
			return nil, err
		}
		defer p.leave(seq)
		if isNull(seq) {
			continue
		}
		if seq.Kind != yaml.SequenceNode {
			return nil, p.errAt(seq, name, "want a list of %s, got %s", name, describeNode(seq))
		}
		*sec.list = make([]StageSpec, len(seq.Content))
		for i, n := range seq.Content {
			ref := stageRef{&(*sec.list)[i], sec.role, fmt.Sprintf("%s[%d]", name, i)}
			site, err := p.header(n, ref)
			if err != nil {
				return nil, err
			}
			sites = append(sites, site)
		}
	}
	// Parameters.
	for _, site := range sites {
		if err := p.params(site); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// header decodes a stage's kind and name and checks that the kind may stand
// where the stage is.
func (p *specParser) header(n *yaml.Node, ref stageRef) (stageSite, error) {
	base := ref.base
	n, err := p.enter(n, base)
	if err != nil {
		return stageSite{}, err
	}
	defer p.leave(n)
	p.mark(base, nil, n)
	if n.Kind != yaml.MappingNode {
		return stageSite{}, p.errAt(n, base, "want a mapping of kind and parameters, got %s", describeNode(n))
	}
	kvs, err := p.pairs(n, base)
	if err != nil {
		return stageSite{}, err
	}
	for _, kv := range kvs {
		var dst *string
		switch kv.key.Value {
		case "kind":
			dst = &ref.ss.Kind
		case "name":
			dst = &ref.ss.Name
		default:
			continue
		}
		path := base + "." + kv.key.Value
		p.mark(path, kv.key, kv.val)
		if err := p.decode(kv.val, reflect.ValueOf(dst).Elem(), decodeCtx{}, path); err != nil {
			return stageSite{}, err
		}
	}
	k, err := lookupKind(p.reg, ref.ss.Kind, ref.role)
	if err != nil {
		at := p.at(base + ".kind")
		if at == nil {
			at = n
		}
		return stageSite{}, p.wrapAt(at, base+".kind", err)
	}
	if ref.ss.Name == "" {
		ref.ss.Name = ref.ss.Kind
	}
	return stageSite{ref: ref, node: n, kind: k}, nil
}

// params decodes a stage's parameters strictly into its kind's config.
func (p *specParser) params(site stageSite) error {
	n, err := p.enter(site.node, site.ref.base)
	if err != nil {
		return err
	}
	defer p.leave(n)
	c := decodeCtx{label: site.ref.label(), base: site.ref.base, stage: site.kind.Name}
	if site.kind.NewConfig == nil {
		kvs, err := p.pairs(n, c.label)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if k := kv.key.Value; k != "kind" && k != "name" {
				return p.errAt(kv.key, c.label, "unknown field %q: stage kind %s takes no parameters", k, site.kind.Name)
			}
		}
		return nil
	}
	cfg := site.kind.NewConfig()
	if err := p.decodeStruct(n, reflect.ValueOf(cfg).Elem(), c, "", true); err != nil {
		return err
	}
	site.ref.ss.Config = cfg
	return nil
}

// decodeCtx says where decoded values belong, for positions and messages.
type decodeCtx struct {
	label string // "stages[0] (augment)"; "" at the top level
	base  string // "stages[0]"
	stage string // the stage kind, "" at the top level
}

func (c decodeCtx) show(fpath string) string { return joinPath(c.label, fpath) }
func (c decodeCtx) key(fpath string) string  { return joinPath(c.base, fpath) }

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func isNull(n *yaml.Node) bool {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decode decodes n into v strictly, naming fpath in errors. A null sets
// the zero value: the default.
func (p *specParser) decode(n *yaml.Node, v reflect.Value, c decodeCtx, fpath string) error {
	n, err := p.enter(n, c.show(fpath))
	if err != nil {
		return err
	}
	defer p.leave(n)
	return p.decodeNode(n, v, c, fpath)
}

// decodeNode is decode after enter.
func (p *specParser) decodeNode(n *yaml.Node, v reflect.Value, c decodeCtx, fpath string) error {
	t := v.Type()
	if isNull(n) {
		v.Set(reflect.Zero(t))
		return nil
	}
	pt := reflect.PointerTo(t)
	if t.Kind() != reflect.Pointer && (pt.Implements(unmarshalerType) || (n.Kind == yaml.ScalarNode && pt.Implements(textUnmarshalerType))) {
		return p.delegate(n, v, c, fpath, true)
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return p.decodeNode(n, v.Elem(), c, fpath)
	case reflect.Struct:
		return p.decodeStruct(n, v, c, fpath, false)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return p.delegate(n, v, c, fpath, false) // []byte from !!binary, or an error
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			ep := fmt.Sprintf("%s[%d]", fpath, i)
			p.mark(c.key(ep), nil, e)
			if err := p.decode(e, s.Index(i), c, ep); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return p.errAt(n, c.show(fpath), "cannot use %s as %s", describeNode(n), t)
		}
		if len(n.Content) != t.Len() {
			return p.errAt(n, c.show(fpath), "want %d values, got %d", t.Len(), len(n.Content))
		}
		for i, e := range n.Content {
			ep := fmt.Sprintf("%s[%d]", fpath, i)
			p.mark(c.key(ep), nil, e)
			if err := p.decode(e, v.Index(i), c, ep); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return p.errAt(n, c.show(fpath), "cannot use %s as %s", describeNode(n), t)
		}
		kvs, err := p.pairs(n, c.show(fpath))
		if err != nil {
			return err
		}
		if v.IsNil() {
			v.Set(reflect.MakeMapWithSize(t, len(kvs)))
		}
		for _, kv := range kvs {
			ep := joinPath(fpath, kv.key.Value)
			p.mark(c.key(ep), kv.key, kv.val)
			kp := reflect.New(t.Key()).Elem()
			if err := p.decode(kv.key, kp, c, ep); err != nil {
				return err
			}
			vp := reflect.New(t.Elem()).Elem()
			if err := p.decode(kv.val, vp, c, ep); err != nil {
				return err
			}
			v.SetMapIndex(kp, vp)
		}
		return nil
	case reflect.Interface:
		return p.delegate(n, v, c, fpath, false)
	}
	if n.Kind != yaml.ScalarNode {
		return p.errAt(n, c.show(fpath), "cannot use %s as %s", describeNode(n), t)
	}
	if isIntType(t) && n.ShortTag() == "!!float" {
		// yaml.v3 truncates 2.5 to 2; take only whole numbers.
		if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err != nil || f != math.Trunc(f) {
			return p.errAt(n, c.show(fpath), "cannot use %s as %s", describeNode(n), t)
		}
	}
	return p.delegate(n, v, c, fpath, false)
}

func isIntType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// delegate lets yaml.v3 decode n into v, and rewrites its errors to name
// the field.
func (p *specParser) delegate(n *yaml.Node, v reflect.Value, c decodeCtx, fpath string, custom bool) error {
	ptr := reflect.New(v.Type())
	ptr.Elem().Set(v)
	if err := n.Decode(ptr.Interface()); err != nil {
		var te *yaml.TypeError
		if !custom && errors.As(err, &te) {
			return p.errAt(n, c.show(fpath), "cannot use %s as %s", describeNode(n), v.Type())
		}
		msg := err.Error()
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = te.Errors[0]
		}
		msg = yamlLineRE.ReplaceAllString(msg, "")
		return p.errAt(n, c.show(fpath), "%s", strings.TrimPrefix(msg, "yaml: "))
	}
	v.Set(ptr.Elem())
	return nil
}

// decodeStruct decodes mapping n into struct v, refusing unknown keys.
// At a stage's top level (stage true) the keys kind and name are skipped.
func (p *specParser) decodeStruct(n *yaml.Node, v reflect.Value, c decodeCtx, fpath string, stage bool) error {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		return p.errAt(n, c.show(fpath), "cannot use %s as %s (want a mapping)", describeNode(n), t)
	}
	info, err := structFields(t)
	if err != nil {
		return p.errAt(n, c.show(fpath), "config %s: %v", t, err)
	}
	kvs, err := p.pairs(n, c.show(fpath))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		key := kv.key.Value
		if stage && (key == "kind" || key == "name") {
			continue
		}
		ep := joinPath(fpath, key)
		p.mark(c.key(ep), kv.key, kv.val)
		idx, ok := info.fields[key]
		if !ok && info.inline != nil {
			m := fieldByIndex(v, info.inline)
			if m.IsNil() {
				m.Set(reflect.MakeMap(m.Type()))
			}
			ev := reflect.New(m.Type().Elem()).Elem()
			if err := p.decode(kv.val, ev, c, ep); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(key).Convert(m.Type().Key()), ev)
			continue
		}
		if !ok {
			where := ""
			if stage {
				where = " in stage " + c.stage
			}
			return p.errAt(kv.key, c.show(fpath), "unknown field %q%s (known: %s)%s", key, where, strings.Join(info.names, ", "), didYouMean(key, info.names))
		}
		if err := p.decode(kv.val, fieldByIndex(v, idx), c, ep); err != nil {
			return err
		}
	}
	return nil
}

// fieldByIndex is v.FieldByIndex, allocating nil embedded pointers.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// fieldInfo is the YAML view of a struct type, as yaml.v3 sees it.
type fieldInfo struct {
	fields map[string][]int // YAML key → field index path
	names  []string         // the keys, sorted
	inline []int            // an ",inline" map that takes unknown keys, or nil
}

var fieldCache sync.Map // reflect.Type → fieldInfo

// structFields returns the YAML keys of struct type t as yaml.v3 decodes
// them: the `yaml` tag's name or the lower-cased field name, "-" skipped,
// ",inline" structs flattened.
func structFields(t reflect.Type) (fieldInfo, error) {
	if fi, ok := fieldCache.Load(t); ok {
		return fi.(fieldInfo), nil
	}
	fi := fieldInfo{fields: make(map[string][]int)}
	var walk func(t reflect.Type, index []int, depth int) error
	walk = func(t reflect.Type, index []int, depth int) error {
		if depth > 10 {
			return errors.New("inline structs nest too deep")
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(index[:len(index):len(index)], i)
			if strings.Contains(","+opts+",", ",inline,") {
				ft := f.Type
				switch {
				case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String:
					if fi.inline != nil {
						return errors.New("more than one inline map")
					}
					fi.inline = idx
				case ft.Kind() == reflect.Struct:
					if err := walk(ft, idx, depth+1); err != nil {
						return err
					}
				case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
					if err := walk(ft.Elem(), idx, depth+1); err != nil {
						return err
					}
				default:
					return fmt.Errorf("field %s: ,inline needs a struct or a map with string keys", f.Name)
				}
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if _, dup := fi.fields[name]; dup {
				return fmt.Errorf("two fields have the key %q", name)
			}
			fi.fields[name] = idx
			fi.names = append(fi.names, name)
		}
		return nil
	}
	if err := walk(t, nil, 0); err != nil {
		return fieldInfo{}, err
	}
	sort.Strings(fi.names)
	fieldCache.Store(t, fi)
	return fi, nil
}
