package pipeline_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
)

// A flow of three stages: a source of words, a pool of four workers that
// upper-cases them (keeping input order), and a sink that prints them.
func ExampleFlow() {
	words := pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		for _, w := range strings.Fields("two views of one sample") {
			if err := out.Send(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	upper := pipeline.Map(func(_ context.Context, w string) (string, error) {
		return strings.ToUpper(w), nil
	}, pipeline.PoolOptions{Workers: 4})
	print := pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		for {
			v, ok, err := in.Recv(ctx)
			if err != nil || !ok {
				return err
			}
			fmt.Println(v)
		}
	})

	f := pipeline.New(pipeline.Options{}).Add("words", words).Add("upper", upper).Add("print", print)
	if err := f.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	m := f.Metrics()
	fmt.Printf("%s: %d workers, %d in, %d out\n", m[1].Name, m[1].Workers, m[1].In, m[1].Out)
	// Output:
	// TWO
	// VIEWS
	// OF
	// ONE
	// SAMPLE
	// upper: 4 workers, 5 in, 5 out
}

// A bad sample is skipped and counted; past MaxBadSamples it is fatal.
func ExampleReportSkip() {
	parse := pipeline.Map(func(_ context.Context, s string) (int, error) {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil {
			return 0, pipeline.Skip("row "+s, err)
		}
		return n, nil
	}, pipeline.PoolOptions{Workers: 2})
	src := pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		for _, s := range []string{"1", "x", "3"} {
			if err := out.Send(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	f := pipeline.New(pipeline.Options{MaxBadSamples: 1}).Add("src", src).Add("parse", parse).Add("sink", pipeline.StageFunc(
		func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
			for {
				v, ok, err := in.Recv(ctx)
				if err != nil || !ok {
					return err
				}
				fmt.Println(v)
			}
		}))
	fmt.Println(f.Run(context.Background()), f.Skips().Count())
	// Output:
	// 1
	// 3
	// <nil> 1
}
