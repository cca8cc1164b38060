package flows

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/collate"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/loss"
	"github.com/contrastream/contrastream/stages/optim"
	"github.com/contrastream/contrastream/stages/queue"
)

// MemoryEstimate is what a flow's run is estimated to need at its peak, in
// bytes, by part, from the flow's spec and plan alone (nothing is
// allocated to find out). PlanOf computes it and refuses a flow whose
// Total is over its limit (see MemoryLimit and pipeline.Spec.MaxMemory).
//
// It is calibrated against the peak RSS of contrastream train (README,
// Performance, Memory: 6–15% above it over an epoch, 22–31% above it
// over two steps, before the collector has used its headroom), and the
// stages' own estimates against the Go heap of their real buffers by
// their tests; it errs on the high side. It
// leaves out what it cannot know before the run: memory that other
// processes use, and a dataset reader's buffers beyond Base (a Parquet
// file with huge row groups).
type MemoryEstimate struct {
	// Encoder is the encode stage's replicas (activations, gradients,
	// im2col columns), the weights, their summed gradient, the key
	// encoder and the embeddings: encode.StageConfig.MemoryBytes. Most of
	// a training flow's memory, and linear in the batch size.
	Encoder int64
	// Loss is the loss's scratch and the loss stage's buffers: linear in
	// the batch size for infonce, quadratic for ntxent and supcon.
	Loss int64
	// Queue is MoCo's queue of keys.
	Queue int64
	// Optimizer is the optimizer's state (momentum, moments).
	Optimizer int64
	// Checkpoint is what writing a checkpoint copies for a moment: the
	// weights, the key encoder, the optimizer's state and the queue, and
	// their serialised bytes.
	Checkpoint int64
	// Data is the views in flight: the batches between collate and the
	// step (pipeline.DefaultBuffer of them, one being filled, one in the
	// step, one waiting for it; one more with last: pad), and the pairs
	// inside and after the augmentation pool.
	Data int64
	// Monitor is the kNN monitor's replicas and features, when the flow
	// has one that is on.
	Monitor int64
	// Base is the program, the Go runtime, the built-in dataset and a
	// dataset reader: fixed, BaseMemory.
	Base int64
	// GC is the garbage collector's headroom: the heap above (everything
	// but Base) may grow by GOGC percent of itself between collections
	// (the CLI sets GOGC to 25), less where a GOMEMLIMIT stops it.
	GC int64
	// Total is the sum of the parts.
	Total int64
}

// BaseMemory is MemoryEstimate.Base: the program's code and data, the Go
// runtime, the built-in dataset and a dataset reader. Calibrated: the
// moco flow's peak RSS over two steps at batch sizes 64, 256 and 1024
// (/usr/bin/time -v) is 76 MiB plus 1.30 MiB a sample; the fixed parts
// the estimate counts (replicas, queue, loss, checkpoint, data) are about
// 28 MiB of it.
const BaseMemory = 48 << 20

// String lists the parts that are not zero and the total.
func (m MemoryEstimate) String() string {
	var parts []string
	for _, p := range []struct {
		name string
		v    int64
	}{{"encoder", m.Encoder}, {"loss", m.Loss}, {"queue", m.Queue}, {"optimizer", m.Optimizer}, {"checkpoint", m.Checkpoint},
		{"data", m.Data}, {"knn monitor", m.Monitor}, {"program", m.Base}, {"GC headroom", m.GC}} {
		if p.v > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", p.name, pipeline.Bytes(p.v)))
		}
	}
	return fmt.Sprintf("%s (%s)", pipeline.Bytes(m.Total), strings.Join(parts, ", "))
}

// EstimateMemory estimates the peak memory of running spec, whose plan
// PlanOf made (its view shape and batch size). A flow that does not batch
// or encode counts only its data and Base.
func EstimateMemory(spec *pipeline.Spec, plan Plan) (MemoryEstimate, error) {
	return estimateMemory(spec, plan, plan.BatchSize)
}

// estimateMemory is EstimateMemory at batch size batch.
func estimateMemory(spec *pipeline.Spec, plan Plan, batch int) (MemoryEstimate, error) {
	var (
		m        MemoryEstimate
		enc      *encode.StageConfig
		lossCfg  *loss.Config
		queueCfg *queue.Config
		optCfg   *optim.Config
		acfg     *augment.Config
		pad      bool
		ckpt     bool
		monCfg   *MonitorConfig
	)
	for _, s := range spec.Stages {
		switch c := s.Config.(type) {
		case *encode.StageConfig:
			enc = c
		case *loss.Config:
			lossCfg = c
		case *queue.Config:
			queueCfg = c
		case *optim.Config:
			optCfg = c
		case *augment.Config:
			acfg = c
		case *collate.Config:
			pad = c.Last == collate.Pad
		}
	}
	for _, s := range spec.Sinks {
		switch c := s.Config.(type) {
		case *CheckpointConfig:
			ckpt = true
		case *MonitorConfig:
			if c.Every == nil || *c.Every != 0 {
				monCfg = c
			}
		}
	}
	in := encode.Input{C: plan.C, H: plan.H, W: plan.W}
	view := 4 * float64(in.Len()) // bytes of one view
	if acfg != nil {
		workers := acfg.Workers
		if workers <= 0 {
			workers = min(runtime.GOMAXPROCS(0), augment.MaxWorkers)
		}
		// The pool's in-flight bound, its output channel, and as many
		// recycled buffers on the free list.
		pairs := float64((2*workers+2)*augmentChunk + 2*pipeline.DefaultBuffer)
		m.Data = saturate(2 * 2 * pairs * view)
	}
	b := float64(batch)
	if batch > 0 {
		batches := float64(pipeline.DefaultBuffer + 3)
		if pad {
			batches++ // collate keeps the epoch's first pairs for padding
		}
		m.Data = saturate(float64(m.Data) + batches*2*b*view)
	}
	var params, out float64
	if enc != nil && batch > 0 && in.Len() > 0 {
		e, err := enc.MemoryBytes(in, batch)
		if err != nil {
			return m, err
		}
		m.Encoder = e
		p, _ := enc.ParamCount(in)
		params = float64(p)
		out = float64(encode.DefaultOut)
		if enc.Out != 0 {
			out = float64(enc.Out)
		}
	}
	var keys float64
	if queueCfg != nil {
		m.Queue = queueCfg.MemoryBytes()
		keys = float64(m.Queue) / 4
	}
	if lossCfg != nil && batch > 0 {
		m.Loss = lossCfg.MemoryBytes(batch, int(out), int(keys/max(out, 1)))
	}
	var state float64
	if optCfg != nil {
		state = float64(optCfg.StateValues(int64(params)))
		m.Optimizer = saturate(4 * state)
	}
	if ckpt && enc != nil {
		saved := params + state + keys // the model, the optimizer's state, the queue
		if enc.KeyEncoder {
			saved += params
		}
		m.Checkpoint = saturate(2 * 4 * saved) // copies, then their bytes
	}
	if monCfg != nil && enc != nil && in.Len() > 0 {
		workers := min(runtime.GOMAXPROCS(0), maxEvalReplicas)
		r, err := enc.ReplicaBytes(in, evalBatch, false)
		if err != nil {
			return m, err
		}
		// The features of the memory and (as many, at most) queries, as
		// the workers hand them over and gathered; the kNN's normalised
		// copies; a snapshot of the weights.
		feats := float64(plan.EpochLen) * float64(enc.Features())
		m.Monitor = saturate(float64(workers)*float64(r) +
			4*(float64(workers+1)*evalBatch*float64(in.Len())+2*2*feats+2*feats+params))
	}
	heap := float64(m.Encoder) + float64(m.Loss) + float64(m.Queue) + float64(m.Optimizer) +
		float64(m.Checkpoint) + float64(m.Data) + float64(m.Monitor)
	m.Base = BaseMemory
	m.GC = saturate(gcHeadroom(heap))
	m.Total = saturate(float64(m.Base) + heap + float64(m.GC))
	return m, nil
}

// augmentChunk is the augment stage's chunk: the most samples a worker
// takes at once.
const augmentChunk = 16

// gcHeadroom is how far a heap of live bytes may grow between two
// collections: GOGC percent of it (runtime/metrics' /gc/gogc:percent),
// but not past GOMEMLIMIT (/gc/gomemlimit:bytes), where the collector
// runs earlier. With the collector off (GOGC=off) it assumes Go's default
// of 100.
func gcHeadroom(live float64) float64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	pct := 100.0
	if s[0].Value.Kind() == metrics.KindUint64 {
		if v := float64(s[0].Value.Uint64()); v > 0 && v <= 1e6 {
			pct = v
		}
	}
	h := live * pct / 100
	if s[1].Value.Kind() == metrics.KindUint64 {
		if lim := float64(s[1].Value.Uint64()); lim < math.MaxInt64 {
			h = min(h, max(0, lim-live))
		}
	}
	return h
}

func saturate(v float64) int64 {
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Ceil(v))
}

// DefaultMemoryFraction is the share of the machine's memory (see
// MachineMemory) that a flow may be estimated to need when its spec sets
// no max_memory.
const DefaultMemoryFraction = 0.9

// MemoryLimit is the limit on spec's estimated memory, with what it comes
// from for messages: the spec's max_memory when set (-1: no limit, 0
// returned), else DefaultMemoryFraction of MachineMemory; 0 when that is
// unknown (not Linux): no limit.
func MemoryLimit(spec *pipeline.Spec) (limit int64, from string) {
	if m := spec.MaxMemory; m != nil {
		if *m < 0 {
			return 0, "max_memory -1: no limit"
		}
		return int64(*m), "the flow's max_memory"
	}
	total, what := MachineMemory()
	if total <= 0 {
		return 0, "no limit: the machine's memory is unknown"
	}
	return int64(float64(total) * DefaultMemoryFraction), fmt.Sprintf("%.0f%% of %s, %s", 100*DefaultMemoryFraction, what, pipeline.Bytes(total))
}

// MachineMemory is the memory this process may use, and what that is:
// the machine's (MemTotal of /proc/meminfo), or its cgroup's limit when
// lower (cgroup v2 memory.max, v1 memory.limit_in_bytes). It is 0 where
// neither can be read (not Linux).
func MachineMemory() (bytes int64, what string) {
	total := memTotal("/proc/meminfo")
	what = "the machine's memory"
	if lim := cgroupMemoryLimit("/proc/self/cgroup", "/sys/fs/cgroup"); lim > 0 && (total <= 0 || lim < total) {
		total, what = lim, "the cgroup's memory limit"
	}
	return total, what
}

// memTotal reads MemTotal from a meminfo file, in bytes; 0 if it cannot.
func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 2 && fields[1] == "kB" {
				if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil && kb > 0 && kb < math.MaxInt64/1024 {
					return kb * 1024
				}
			}
			return 0
		}
	}
	return 0
}

// cgroupMemoryLimit is the memory limit of this process's cgroup under
// root (the cgroup file system): the lowest of cgroup v2's memory.max or
// v1's memory.limit_in_bytes of its cgroup (from selfCgroup,
// /proc/self/cgroup) and of the cgroups above it, up to the root of the
// mount (which is the container's own cgroup where the process's path is
// not there). 0 when there is none or none can be read.
func cgroupMemoryLimit(selfCgroup, root string) int64 {
	var lowest int64
	// walk reads name in dir and in each folder above it, up to top.
	walk := func(top, dir, name string) {
		for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
			if b, err := os.ReadFile(filepath.Join(d, name)); err == nil {
				// "max" (v2) and v1's page-rounded MaxInt64 mean no limit.
				v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				if err == nil && v > 0 && v < 1<<62 && (lowest == 0 || v < lowest) {
					lowest = v
				}
			}
			if len(d) <= len(top) {
				return
			}
		}
	}
	v1, v2 := "/", "/"
	if b, err := os.ReadFile(selfCgroup); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			switch {
			case len(parts) != 3:
			case parts[0] == "0" && parts[1] == "":
				v2 = parts[2]
			case strings.Contains(","+parts[1]+",", ",memory,"):
				v1 = parts[2]
			}
		}
	}
	top := filepath.Clean(root)
	walk(top, filepath.Join(top, v2), "memory.max")
	walk(filepath.Join(top, "unified"), filepath.Join(top, "unified", v2), "memory.max")
	walk(filepath.Join(top, "memory"), filepath.Join(top, "memory", v1), "memory.limit_in_bytes")
	return lowest
}

// checkMemory refuses spec when plan's memory estimate is over its limit,
// saying by how much, what the estimate is made of, and what to change.
func checkMemory(spec *pipeline.Spec, plan Plan) error {
	limit, from := MemoryLimit(spec)
	if limit <= 0 || plan.Memory.Total <= limit {
		return nil
	}
	hint := ""
	if plan.BatchSize > 0 && plan.Memory.Encoder > 0 {
		if fit := largestBatch(spec, plan, limit); fit > 0 {
			hint = fmt.Sprintf("lower stages.collate.batch_size (%d would fit), or ", fit)
		} else {
			hint = "lower stages.collate.batch_size, or "
		}
	}
	gib := (plan.Memory.Total + 1<<30 - 1) >> 30
	return &memoryError{fmt.Sprintf("flow %q needs an estimated %s at batch_size %d, over its limit of %s (%s): %sset max_memory in the flow, or --set max_memory=SIZE (e.g. %dGiB; -1 for no limit), if the machine has the memory",
		spec.Name, plan.Memory, plan.BatchSize, pipeline.Bytes(limit), from, hint, gib)}
}

// memoryError is checkMemory's error; ErrTooMuchMemory matches it.
type memoryError struct{ msg string }

func (e *memoryError) Error() string        { return e.msg }
func (e *memoryError) Is(target error) bool { return target == ErrTooMuchMemory }

// ErrTooMuchMemory is what PlanOf's error matches (errors.Is) when it
// refuses a flow whose estimated memory is over its limit.
var ErrTooMuchMemory = errors.New("the flow's estimated memory is over its limit")

// largestBatch is the largest batch size up to plan's whose estimate fits
// under limit, or 0: a bisection, the estimate growing with the batch.
// Batch sizes whose shards the encode stage's replicas cannot split count
// as not fitting.
func largestBatch(spec *pipeline.Spec, plan Plan, limit int64) int {
	fits := func(b int) bool {
		m, err := estimateMemory(spec, plan, b)
		return err == nil && m.Total <= limit
	}
	lo, hi := 0, plan.BatchSize // fits(lo) (or lo = 0), !fits(hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	for lo > 0 && !fits(lo) { // a count the replicas cannot split
		lo--
	}
	return lo
}
