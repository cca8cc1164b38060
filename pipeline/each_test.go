package pipeline_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func TestEach(t *testing.T) {
	feed := func(vs ...any) *pipeline.Inbox {
		ch := make(chan any, len(vs))
		for _, v := range vs {
			ch <- v
		}
		close(ch)
		return pipeline.NewInbox(ch, nil)
	}
	var got []int
	err := pipeline.Each(context.Background(), feed(1, 2, 3), "sum", func(v int) error { got = append(got, v); return nil })
	if err != nil || !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("Each = %v, saw %v", err, got)
	}
	err = pipeline.Each(context.Background(), feed(1, "two"), "sum", func(int) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "sum: got an element of type string, want int") {
		t.Errorf("wrong type: %v", err)
	}
	var n int
	if err := pipeline.Each(context.Background(), feed(nil, 1), "any", func(any) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("a nil element as any: %v after %d", err, n)
	}
	if err := pipeline.Each(context.Background(), feed(nil), "ptr", func(*int) error { return nil }); err == nil {
		t.Error("a nil element passed as *int")
	}
	boom := errors.New("boom")
	err = pipeline.Each(context.Background(), feed(1, 2), "sum", func(int) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("fn's error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = pipeline.Each(ctx, pipeline.NewInbox(make(chan any), nil), "sum", func(int) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
