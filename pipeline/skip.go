package pipeline

import (
	"errors"
	"fmt"
	"sync"
)

// SkipError marks a per-sample failure (bytes that are not an image, a
// zero-size image, an image over the pixel limit): the sample is dropped and
// counted, and the flow goes on until the flow's limit of bad samples is
// passed. Origin names the file and row.
type SkipError struct {
	// Origin says which sample failed: "train.parquet row 17".
	Origin string
	// Err says why.
	Err error
}

// Error returns "origin: reason".
func (e *SkipError) Error() string { return e.Origin + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *SkipError) Unwrap() error { return e.Err }

// Skip wraps err as a per-sample failure of the sample at origin.
func Skip(origin string, err error) error { return &SkipError{Origin: origin, Err: err} }

// IsSkip reports whether err is a per-sample failure.
func IsSkip(err error) bool {
	var s *SkipError
	return errors.As(err, &s)
}

// Skips counts skipped samples across the stages of one flow. It is safe for
// concurrent use. Make one with NewSkips.
type Skips struct {
	mu      sync.Mutex
	limit   int
	count   int
	recent  []string // the first few origins and reasons, for the summary
	maxKeep int
}

// NewSkips allows up to limit bad samples; one more makes Add return a fatal
// error. A negative limit allows any number.
func NewSkips(limit int) *Skips { return &Skips{limit: limit, maxKeep: 10} }

// Add records a skipped sample. It returns nil while the count is within the
// limit, and an error naming the sample and the limit once it is passed.
func (s *Skips) Add(err *SkipError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	if len(s.recent) < s.maxKeep {
		s.recent = append(s.recent, err.Error())
	}
	if s.limit >= 0 && s.count > s.limit {
		return fmt.Errorf("too many bad samples (%d, limit %d); last: %w", s.count, s.limit, err)
	}
	return nil
}

// Count returns the number of samples skipped so far.
func (s *Skips) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Examples returns the first few skipped samples with their reasons.
func (s *Skips) Examples() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.recent...)
}
