package optim

import (
	"fmt"
	"slices"
	"strings"
)

// The names of the optimizer's state entries.
const (
	// StateStep is the step count: []float32{n mod 2²⁴, n div 2²⁴}, exact
	// for n < 2⁴⁸.
	StateStep = "optim.step"
	// StateMomentum + name is a param's momentum buffer (sgd, lars).
	StateMomentum = "optim.momentum."
	// StateAdamM + name is a param's first moment (adamw).
	StateAdamM = "optim.adam.m."
	// StateAdamV + name is a param's second moment (adamw).
	StateAdamV = "optim.adam.v."
)

const statePrefix = "optim."

// A bufSet is one kind of per-param buffer, named prefix + param name.
type bufSet struct {
	prefix string
	bufs   [][]float32
}

// newBufs allocates one zeroed buffer per param, all in one slab.
func newBufs(params []*Param) [][]float32 {
	n := 0
	for _, p := range params {
		n += len(p.Data)
	}
	slab := make([]float32, n)
	bufs := make([][]float32, len(params))
	for i, p := range params {
		bufs[i], slab = slab[:len(p.Data):len(p.Data)], slab[len(p.Data):]
	}
	return bufs
}

// lengths returns len(p.Data) of every param.
func lengths(params []*Param) []int {
	n := make([]int, len(params))
	for i, p := range params {
		n[i] = len(p.Data)
	}
	return n
}

func saveState(step int, params []*Param, sets []bufSet) map[string][]float32 {
	st := make(map[string][]float32, 1+len(sets)*len(params))
	st[StateStep] = []float32{float32(step & (1<<24 - 1)), float32(step >> 24)}
	for _, s := range sets {
		for i, p := range params {
			st[s.prefix+p.Name] = slices.Clone(s.bufs[i])
		}
	}
	return st
}

// loadState checks every "optim." entry of st against params and sets,
// then copies the buffers in and returns the step count. It changes
// nothing when it fails.
func loadState(st map[string][]float32, params []*Param, sets []bufSet, kind string) (int, error) {
	s, ok := st[StateStep]
	if !ok {
		return 0, fmt.Errorf("optim: state has no %q", StateStep)
	}
	if len(s) != 2 || s[0] < 0 || s[1] < 0 || s[0] >= 1<<24 || s[1] >= 1<<24 || s[0] != float32(int(s[0])) || s[1] != float32(int(s[1])) {
		return 0, fmt.Errorf("optim: state %q is %v, want two whole numbers in [0, 2^24)", StateStep, s)
	}
	step := int(s[0]) + int(s[1])<<24
	for _, set := range sets {
		for i, p := range params {
			key := set.prefix + p.Name
			v, ok := st[key]
			if !ok {
				return 0, fmt.Errorf("optim: state has no %q (a checkpoint of another optimizer than %s, or of other params?)", key, kind)
			}
			if len(v) != len(set.bufs[i]) {
				return 0, fmt.Errorf("optim: state %q has %d values, param %q has %d", key, len(v), p.Name, len(set.bufs[i]))
			}
		}
	}
	n := 0
	for k := range st {
		if strings.HasPrefix(k, statePrefix) {
			n++
		}
	}
	if n != 1+len(sets)*len(params) {
		known := map[string]bool{StateStep: true}
		for _, set := range sets {
			for _, p := range params {
				known[set.prefix+p.Name] = true
			}
		}
		var extra []string
		for k := range st {
			if strings.HasPrefix(k, statePrefix) && !known[k] {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		return 0, fmt.Errorf("optim: state has %q, which %s over these params does not have (a checkpoint of another optimizer, or of other params?)", extra[0], kind)
	}
	for _, set := range sets {
		for i, p := range params {
			copy(set.bufs[i], st[set.prefix+p.Name])
		}
	}
	return step, nil
}

// NonFinite finds the first NaN or ±Inf in opt's state (its moment
// buffers) and returns its name as State would give it and its index; ok
// is false when all are finite. It allocates nothing: the training step
// calls it after every update.
func NonFinite(opt Optimizer) (name string, i int, v float32, ok bool) {
	o, has := opt.(interface{ sets() []bufSet })
	if !has {
		return "", 0, 0, false
	}
	params := opt.Params()
	for _, s := range o.sets() {
		for j, buf := range s.bufs {
			for k, x := range buf {
				if x-x != 0 { // NaN - NaN and Inf - Inf are NaN; a finite x gives 0
					return s.prefix + params[j].Name, k, x, true
				}
			}
		}
	}
	return "", 0, 0, false
}
