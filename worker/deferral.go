package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/activity"
)

// failMethod is activity.FailMethod, the next_method with which the
// executor resumes a task whose trigger failed, ended without an event or
// passed its timeout (Airflow's "__fail__"); next_kwargs["error"] says why.
// The worker ends such a try itself, as up_for_retry with that reason, and
// starts no process.
const failMethod = activity.FailMethod

// triggerFailedDefault is the reason of a __fail__ resume without an error.
const triggerFailedDefault = "trigger failed"

// Environment variables of the command runtime's deferral.
const (
	envDeferFile  = "TASKWIRE_DEFER_FILE"
	envNextMethod = "TASKWIRE_NEXT_METHOD"
	envNextKwargs = "TASKWIRE_NEXT_KWARGS"
	envEvent      = "TASKWIRE_EVENT"
)

// maxDeferFileSize bounds a defer file; an activity is no larger either.
const maxDeferFileSize = activity.MaxSizeDefault

// triggerFailure returns the reason of a __fail__ resume: next_kwargs'
// "error" when it is a non-empty string.
func triggerFailure(nextKwargs map[string]any) string {
	if s, ok := nextKwargs["error"].(string); ok && s != "" {
		return s
	}
	return triggerFailedDefault
}

// deferredOutcome is the outcome of a try that defers on a trigger: the one
// constructor for DeferTask (SDK runtimes) and the defer file (the command
// runtime). The trigger gets a fresh id; the executor checks the rest.
func deferredOutcome(classpath string, kwargs map[string]any, timeout time.Duration, nextMethod string, nextKwargs map[string]any) outcome {
	return outcome{
		state:      activity.StateDeferred,
		trigger:    &activity.Trigger{ID: uuid.NewString(), Classpath: classpath, Kwargs: kwargs, Timeout: activity.Duration(timeout)},
		nextMethod: nextMethod,
		nextKwargs: nextKwargs,
	}
}

// parseTriggerTimeout parses an optional trigger timeout, a Go duration:
// "" is none.
func parseTriggerTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("timeout %q: want a non-negative duration like \"90s\"", s)
	}
	return d, nil
}

// deferRequest is the content of a command's defer file.
type deferRequest struct {
	Trigger    string         `json:"trigger"`
	Kwargs     map[string]any `json:"kwargs"`
	NextMethod string         `json:"next_method"`
	NextKwargs map[string]any `json:"next_kwargs"`
	Timeout    string         `json:"timeout"`
}

// errNoDeferFile says that the command left no defer file: it did not defer.
var errNoDeferFile = errors.New("no defer file")

// readDeferFile reads and checks the defer file at path. It returns
// errNoDeferFile when there is none; any other error names the file's
// problem.
func readDeferFile(path string) (outcome, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return outcome{}, errNoDeferFile
	}
	if err != nil {
		return outcome{}, err
	}
	if !st.Mode().IsRegular() {
		// Not a symlink either: the worker reads no file but the one it named.
		return outcome{}, fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return outcome{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDeferFileSize+1))
	if err != nil {
		return outcome{}, fmt.Errorf("read: %w", err)
	}
	if len(data) > maxDeferFileSize {
		return outcome{}, fmt.Errorf("larger than %d bytes", maxDeferFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber() // numbers reach the trigger as written
	var req *deferRequest
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return outcome{}, errors.New("empty: want a JSON object")
		}
		return outcome{}, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return outcome{}, errors.New("trailing data after the JSON object")
	}
	switch {
	case req == nil:
		return outcome{}, errors.New("null: want a JSON object")
	case req.Trigger == "" && req.NextMethod == "":
		return outcome{}, errors.New(`"trigger" and "next_method" are missing`)
	case req.Trigger == "":
		return outcome{}, errors.New(`"trigger" is missing`)
	case req.NextMethod == "":
		return outcome{}, errors.New(`"next_method" is missing`)
	case req.NextMethod == failMethod:
		return outcome{}, fmt.Errorf("next_method %q is reserved", failMethod)
	}
	timeout, err := parseTriggerTimeout(req.Timeout)
	if err != nil {
		return outcome{}, err
	}
	return deferredOutcome(req.Trigger, req.Kwargs, timeout, req.NextMethod, req.NextKwargs), nil
}

// decodeError explains why a defer file did not decode.
func decodeError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("not valid JSON (at byte %d): %w", se.Offset, err)
	case errors.As(err, &te) && te.Field == "":
		return fmt.Errorf("a JSON %s, want an object", te.Value)
	case errors.As(err, &te):
		want := "a string"
		if te.Type.Kind() == reflect.Map {
			want = "an object"
		}
		return fmt.Errorf("%q is a JSON %s, want %s", te.Field, te.Value, want)
	}
	return fmt.Errorf("not a valid defer request: %w", err)
}

// deferFile returns a fresh path for a command's defer file, which does not
// exist yet, in a directory of the worker's own (made once: a directory per
// try cost a mkdir and a rmdir on every task's hot path), and a func that
// removes the file.
func (w *Worker) deferFile(ti activity.TI) (file string, cleanup func(), err error) {
	w.deferOnce.Do(func() { w.deferRoot, w.deferErr = os.MkdirTemp("", "taskwire-defer-") })
	if w.deferErr != nil {
		return "", nil, w.deferErr
	}
	file = filepath.Join(w.deferRoot, fmt.Sprintf("%s.%d.%s.json", ti.ID, ti.TryNumber, uuid.NewString()[:8]))
	return file, func() {
		if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("remove defer file", "file", file, "err", err)
		}
	}, nil
}

// removeDeferRoot removes the defer files' directory once no task runs.
func (w *Worker) removeDeferRoot() {
	if w.deferRoot != "" {
		_ = os.RemoveAll(w.deferRoot)
	}
}

// resumeEnv returns the variables that tell a resumed command where to
// continue: TASKWIRE_NEXT_METHOD, TASKWIRE_NEXT_KWARGS (JSON, "{}" when
// there are none) and TASKWIRE_EVENT (JSON of next_kwargs["event"], "" when
// absent). It returns nothing on a first run.
func resumeEnv(nextMethod string, nextKwargs map[string]any) ([]string, error) {
	if nextMethod == "" {
		return nil, nil
	}
	kw := []byte("{}")
	if nextKwargs != nil {
		var err error
		if kw, err = json.Marshal(nextKwargs); err != nil {
			return nil, fmt.Errorf("encode next_kwargs: %w", err)
		}
	}
	var ev []byte
	if e, ok := nextKwargs["event"]; ok {
		var err error
		if ev, err = json.Marshal(e); err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
	}
	return []string{
		envNextMethod + "=" + nextMethod,
		envNextKwargs + "=" + string(kw),
		envEvent + "=" + string(ev),
	}, nil
}
