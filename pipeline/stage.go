package pipeline

import "context"

// Stage is one step of a flow. Run reads elements from in until it is
// exhausted (or ctx is done), writes its results to out, and returns nil on
// a normal end or the error that should stop the whole flow.
//
// The runner creates and closes the channels behind in and out; a stage never
// closes them. A source stage gets an in that is already exhausted, a sink
// stage an out that discards. Every receive and send goes through in.Recv and
// out.Send, which select on ctx.Done() and record the stage's metrics.
type Stage interface {
	Run(ctx context.Context, in *Inbox, out *Outbox) error
}

// StageFunc adapts a function to a Stage, as http.HandlerFunc does.
type StageFunc func(ctx context.Context, in *Inbox, out *Outbox) error

// Run calls f.
func (f StageFunc) Run(ctx context.Context, in *Inbox, out *Outbox) error { return f(ctx, in, out) }

var _ Stage = StageFunc(nil)
