package pipeline

import "sync"

// Parallel calls f(0), …, f(n−1) at once, f(0) on the calling goroutine
// and the others on goroutines of their own, waits for all of them, and
// returns the error of the lowest i that failed (nil when none did). A
// panic in f becomes a *PanicError with its stack. It is the fan-out of a
// step's fixed work, such as one replica per core; for a stream of
// elements use Map.
func Parallel(n int, f func(i int) error) error {
	if n <= 0 {
		return nil
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = protect(func() error { return f(i) })
		}()
	}
	errs[0] = protect(func() error { return f(0) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
