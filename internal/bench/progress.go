package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressInterval is how often the progress line is redrawn.
const progressInterval = 100 * time.Millisecond

// progress draws one line, "phase [bar] done/total elapsed", redrawn in
// place with \r. A nil *progress, or one with no writer, draws nothing.
type progress struct {
	w     io.Writer
	start time.Time

	mu    sync.Mutex
	phase string
	total int
	done  func() int

	stop chan struct{}
	wg   sync.WaitGroup
}

// newProgress starts drawing on w every progressInterval until close; with
// a nil w it draws nothing.
func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now(), stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// set makes name the phase shown, with done() of total done.
func (p *progress) set(name string, total int, done func() int) {
	p.mu.Lock()
	p.phase, p.total, p.done = name, total, done
	p.mu.Unlock()
	p.draw()
}

func (p *progress) draw() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase == "" {
		return
	}
	done := 0
	if p.done != nil {
		done = min(p.done(), p.total)
	}
	fmt.Fprint(p.w, "\r\x1b[K"+progressLine(p.phase, done, p.total, time.Since(p.start)))
}

// progressLine renders one state of the progress line; a phase with no
// total has no bar.
func progressLine(phase string, done, total int, elapsed time.Duration) string {
	const width = 24
	if total <= 0 {
		return fmt.Sprintf("%-24s %.1fs", phase, elapsed.Seconds())
	}
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	return fmt.Sprintf("%-24s [%s%s] %d/%d  %.1fs", phase,
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, elapsed.Seconds())
}

// close stops drawing and clears the line.
func (p *progress) close() {
	if p.w == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	fmt.Fprint(p.w, "\r\x1b[K")
}
