package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/reugn/go-streams/flow"

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

// source returns a stage that sends vs, for the examples.
func source[T any](vs ...T) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		for _, v := range vs {
			if err := out.Send(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// printer is a sink that prints what it receives, prefixed.
func printer(prefix string) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		for {
			v, ok, err := in.Recv(ctx)
			if err != nil || !ok {
				return err
			}
			fmt.Println(prefix, v)
		}
	})
}

// Map on three workers: the later elements finish first, yet the results
// leave in input order.
func ExampleMap() {
	square := pipeline.Map(func(_ context.Context, v int) (int, error) {
		time.Sleep(time.Duration(6-v) * time.Millisecond)
		return v * v, nil
	}, pipeline.PoolOptions{Workers: 3})
	f := pipeline.New(pipeline.Options{}).
		Add("numbers", source(1, 2, 3, 4, 5)).
		Add("square", square).
		Add("print", printer("got"))
	if err := f.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// got 1
	// got 4
	// got 9
	// got 16
	// got 25
}

// Tee hands every element to each of its sinks. The sinks run
// concurrently, so each collects what it receives and they are printed
// after the flow has ended.
func ExampleTee() {
	var first, second []string
	collect := func(dst *[]string) pipeline.Stage {
		return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
			for {
				v, ok, err := in.Recv(ctx)
				if err != nil || !ok {
					return err
				}
				*dst = append(*dst, v.(string))
			}
		})
	}
	f := pipeline.New(pipeline.Options{}).
		Add("words", source("crop", "flip", "jitter")).
		Add("both", pipeline.Tee(collect(&first), collect(&second)))
	if err := f.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(first)
	fmt.Println(second)
	// Output:
	// [crop flip jitter]
	// [crop flip jitter]
}

// FromStreams runs a go-streams operator as a stage of a flow, under the
// flow's context.
func ExampleFromStreams() {
	upper := flow.NewMap(strings.ToUpper, 1) // parallelism 1 keeps order
	f := pipeline.New(pipeline.Options{}).
		Add("words", source("two", "views")).
		Add("upper", pipeline.FromStreams(upper)).
		Add("print", printer("got"))
	if err := f.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// got TWO
	// got VIEWS
}
