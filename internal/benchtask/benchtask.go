// Package benchtask is what a bench task process does: the no-op and
// deferring command tasks and the no-op Go SDK runtime of cmd/bench. It
// imports little beyond the SDK so that a binary made of it alone
// (cmd/bench/taskbin) starts about as fast as any small Go program: the
// bench measures taskwire, not the start of a large binary.
package benchtask

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/taskwire/taskwire/sdk"
)

// The environment of a bench task process.
const (
	// EnvMode names the mode of the process; unset in the bench itself.
	EnvMode = "TASKWIRE_BENCH_MODE"
	// EnvStampDir is the directory ModeNoop and ModeDefer write their
	// stamps to, in a file named by TASKWIRE_TI_ID (plus ".defer" or
	// ".resume" for ModeDefer). Unset, ModeNoop writes nothing.
	EnvStampDir = "TASKWIRE_BENCH_STAMP_DIR"
)

// Modes: the values of EnvMode handled by Run.
const (
	// ModeNoop exits at once, after writing its start time (Unix
	// nanoseconds) to $TASKWIRE_BENCH_STAMP_DIR/$TASKWIRE_TI_ID when the
	// directory is set.
	ModeNoop = "noop"
	// ModeSDK is a Go SDK runtime with one task, "noop", that succeeds.
	ModeSDK = "sdk"
	// ModeDefer is a command task that defers on an already-due timer and
	// stamps the time it ends (<ti>.defer); resumed (TASKWIRE_NEXT_METHOD
	// set), it stamps the time it starts (<ti>.resume).
	ModeDefer = "defer"
)

// Environment the worker gives a command task (see package worker).
const (
	envTIID       = "TASKWIRE_TI_ID"
	envDeferFile  = "TASKWIRE_DEFER_FILE"
	envNextMethod = "TASKWIRE_NEXT_METHOD"
)

// deferSpec defers on an already-due timer, resuming at "resume".
const deferSpec = `{"trigger":"timedelta","kwargs":{"delta":0},"next_method":"resume"}`

// Run runs the process in mode with os.Args[1:] and returns its exit status;
// handled is false for a mode that is not one of this package's.
func Run(mode string) (status int, handled bool) {
	switch mode {
	case ModeNoop:
		now := time.Now()
		if dir := os.Getenv(EnvStampDir); dir != "" {
			if err := WriteStamp(dir, os.Getenv(envTIID), now); err != nil {
				fmt.Fprintln(os.Stderr, "bench noop:", err)
				return 1, true
			}
		}
		return 0, true
	case ModeDefer:
		if err := deferOrResume(time.Now()); err != nil {
			fmt.Fprintln(os.Stderr, "bench defer:", err)
			return 1, true
		}
		return 0, true
	case ModeSDK:
		r := sdk.New()
		r.Register("noop", func(context.Context, *sdk.Task) error { return nil })
		r.Main() // exits
		return 1, true
	}
	return 0, false
}

func deferOrResume(now time.Time) error {
	dir, ti := os.Getenv(EnvStampDir), os.Getenv(envTIID)
	if os.Getenv(envNextMethod) != "" {
		return WriteStamp(dir, ti+".resume", now)
	}
	if err := os.WriteFile(os.Getenv(envDeferFile), []byte(deferSpec), 0o644); err != nil {
		return err
	}
	return WriteStamp(dir, ti+".defer", time.Now())
}

// WriteStamp writes now (Unix nanoseconds) to dir/name.
func WriteStamp(dir, name string, now time.Time) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(strconv.FormatInt(now.UnixNano(), 10)), 0o644)
}
