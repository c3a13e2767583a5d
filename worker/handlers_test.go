package worker

import (
	"testing"
	"time"
)

// Messages handled one after another reuse the handler goroutines instead
// of starting one each; an idle one ends after its idle time, and stop
// ends the idle ones at once.
func TestHandlersReuseGoroutines(t *testing.T) {
	t.Parallel()
	h := newHandlers(time.Hour)
	const n = 200
	for range n {
		done := make(chan struct{})
		h.run(func() { close(done) })
		<-done
	}
	if got := h.started.Load(); got > n/4 {
		t.Errorf("%d goroutines started for %d messages one after another, want a few kept ones", got, n)
	}
	stopped := make(chan struct{})
	go func() {
		h.stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not end the idle handler goroutines")
	}
	if live := h.live.Load(); live != 0 {
		t.Errorf("%d handler goroutines left after stop", live)
	}

	short := newHandlers(time.Millisecond)
	done := make(chan struct{})
	short.run(func() { close(done) })
	<-done
	deadline := time.Now().Add(10 * time.Second)
	for short.live.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if live := short.live.Load(); live != 0 {
		t.Errorf("%d handler goroutines still live past their idle time", live)
	}
	short.stop()
}
