package pipeline

import (
	"context"
	"fmt"
	"reflect"
)

// Each receives the elements of in until it is exhausted (then it returns
// nil) or ctx is done, and calls fn with each, as a T; the first error of fn
// ends it. An element that is not a T is a fatal error naming the stage and
// both types (a nil element passes only as an interface type). It is the loop of most single-goroutine stages:
//
//	return pipeline.Each(ctx, in, "loss", func(e *pipeline.Encoded) error { … })
func Each[T any](ctx context.Context, in *Inbox, stage string, fn func(T) error) error {
	for {
		v, ok, err := in.Recv(ctx)
		if !ok || err != nil {
			return err
		}
		t, isT := v.(T)
		if !isT && (v != nil || reflect.TypeFor[T]().Kind() != reflect.Interface) {
			return fmt.Errorf("%s: got an element of type %T, want %v", stage, v, reflect.TypeFor[T]())
		}
		if err := fn(t); err != nil {
			return err
		}
	}
}
