package trigger

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// Kwargs of the file kind ("interval" is shared with http).
const kwPath = "path"

// fileIntervalDefault is the file kind's default poll interval.
const fileIntervalDefault = time.Second

// fileSpec is a checked file trigger.
type fileSpec struct {
	path     string
	interval time.Duration
	// rateKey, when set, paces the globs under that key's limit (a
	// network share that must not be listed too often). There is no
	// default: a local glob costs a few system calls, and a rate key
	// cannot hold the path's slashes.
	rateKey string
}

func parseFile(kw map[string]any) (fileSpec, error) {
	const kind = KindFile
	var s fileSpec
	v := kw[kwPath]
	if v == nil {
		return s, missing(kind, kwPath)
	}
	p, err := stringArg(kind, kwPath, v)
	if err != nil {
		return s, err
	}
	switch {
	case p == "":
		return s, kwargError(kind, kwPath, v, "is empty")
	case strings.IndexByte(p, 0) >= 0:
		return s, kwargError(kind, kwPath, v, "holds a NUL byte")
	case !validGlob(p):
		return s, kwargError(kind, kwPath, v, "is not a valid glob: %v", filepath.ErrBadPattern)
	}
	s.path = p
	if s.interval, err = intervalArg(kind, kw, fileIntervalDefault); err != nil {
		return s, err
	}
	if s.rateKey, err = rateKeyArg(kind, kw); err != nil {
		return s, err
	}
	return s, nil
}

// validGlob reports whether filepath.Glob accepts pattern however the
// file system looks. filepath.Match(pattern, "") alone stops at the first
// chunk that fails to match, and Glob matches each path element on its
// own, so every star-free chunk of every element is checked.
func validGlob(pattern string) bool {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return false
	}
	for elem := range strings.SplitSeq(pattern, string(filepath.Separator)) {
		for elem != "" {
			elem = strings.TrimLeft(elem, "*")
			i := chunkEnd(elem)
			if _, err := filepath.Match(elem[:i], ""); err != nil {
				return false
			}
			elem = elem[i:]
		}
	}
	return true
}

// chunkEnd returns the length of the chunk pattern starts with: up to the
// first '*' outside a character class, as filepath.Match splits it.
func chunkEnd(pattern string) int {
	inrange := false
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			if runtime.GOOS != "windows" && i+1 < len(pattern) {
				i++
			}
		case '[':
			inrange = true
		case ']':
			inrange = false
		case '*':
			if !inrange {
				return i
			}
		}
	}
	return len(pattern)
}

func normalizeFile(kw map[string]any, _ time.Time) (map[string]any, error) {
	s, err := parseFile(kw)
	if err != nil {
		return nil, err
	}
	out := map[string]any{kwPath: s.path, kwInterval: s.interval.String()}
	if s.rateKey != "" {
		out[kwRateKey] = s.rateKey
	}
	return out, nil
}

// fileTrigger is a started file trigger: one goroutine polling.
type fileTrigger struct {
	once
	spec    fileSpec
	limiter Limiter // nil: unpaced
}

func startFile(env *Env, t activity.Trigger, fire func(Event)) (func(), error) {
	s, err := parseFile(t.Kwargs)
	if err != nil {
		return nil, err
	}
	f := &fileTrigger{once: once{fn: fire}, spec: s}
	if env != nil && s.rateKey != "" {
		f.limiter = env.Limiter
	}
	ctx, cancel := context.WithCancel(context.Background())
	go f.run(ctx)
	return func() {
		f.cancel()
		cancel()
	}, nil
}

// glob lists the matches, after its rate key's limit lets it.
func (f *fileTrigger) glob(ctx context.Context) ([]string, error) {
	if f.limiter != nil {
		release, err := f.limiter.Acquire(ctx, f.spec.rateKey)
		if err != nil {
			return nil, nil // ctx ended
		}
		defer release()
	}
	return filepath.Glob(f.spec.path)
}

// run globs at once and then every interval until there is a match or
// ctx is done.
func (f *fileTrigger) run(ctx context.Context) {
	wait := time.NewTimer(f.spec.interval)
	defer wait.Stop()
	for {
		matches, err := f.glob(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil { // checked at Start
			f.fire(Event{Err: "file trigger: " + err.Error()})
			return
		}
		if len(matches) > 0 {
			all := make([]any, len(matches))
			for i, m := range matches {
				all[i] = m
			}
			f.fire(Event{Payload: map[string]any{"path": matches[0], "matches": all}})
			return
		}
		wait.Reset(f.spec.interval)
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
	}
}
