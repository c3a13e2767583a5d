package worker

import (
	"sync"
	"sync/atomic"
	"time"
)

// handlers runs the handling of pulled messages on goroutines kept between
// messages: a new goroutine's stack starts small and grows (copied, each
// time it doubles) on every message's way through decoding and HTTP
// calls, which a kept goroutine's grown stack does not repeat. A goroutine
// waits idleFor for the next message, then ends; stop ends the idle ones
// and waits for all.
type handlers struct {
	idleFor time.Duration
	work    chan func()
	quit    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	// started counts the goroutines started, live those not ended.
	started, live atomic.Int64
}

// handlerIdle is how long a handler goroutine waits for another message.
const handlerIdle = 30 * time.Second

func newHandlers(idleFor time.Duration) *handlers {
	return &handlers{idleFor: idleFor, work: make(chan func()), quit: make(chan struct{})}
}

// run runs f on an idle handler goroutine, or on a new one when none is
// idle.
func (h *handlers) run(f func()) {
	select {
	case h.work <- f:
	default:
		h.wg.Add(1)
		h.started.Add(1)
		h.live.Add(1)
		go h.loop(f)
	}
}

func (h *handlers) loop(f func()) {
	defer h.wg.Done()
	defer h.live.Add(-1)
	t := time.NewTimer(h.idleFor)
	defer t.Stop()
	for {
		f()
		t.Reset(h.idleFor)
		select {
		case f = <-h.work:
		case <-t.C:
			return
		case <-h.quit:
			return
		}
	}
}

// stop ends the idle goroutines and waits for every one: call it once no
// more work comes.
func (h *handlers) stop() {
	h.once.Do(func() { close(h.quit) })
	h.wg.Wait()
}
