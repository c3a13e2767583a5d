package trigger

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// minInterval is the shortest poll interval the polling kinds accept.
const minInterval = 10 * time.Millisecond

// withDefaults returns a copy of env (which may be nil) with its zero
// fields set to their defaults.
func (env *Env) withDefaults() *Env {
	var e Env
	if env != nil {
		e = *env
	}
	if e.HTTPClient == nil {
		e.HTTPClient = http.DefaultClient
	}
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return &e
}

func start(env *Env, t activity.Trigger, fire func(Event)) (func(), error) {
	if fire == nil {
		return nil, errors.New("start trigger: nil fire func")
	}
	kind := t.Kind
	if kind == "" {
		k, err := resolveKind(t.Classpath)
		if err != nil {
			return nil, err
		}
		kind = k
	}
	env = env.withDefaults()
	switch kind {
	case KindDateTime, KindTimeDelta:
		return startTimer(env, kind, t.Kwargs, fire)
	case KindHTTP:
		return startHTTP(env, t, fire)
	case KindFile:
		return startFile(env, t, fire)
	case KindEvent:
		return startEvent(env, t, fire)
	case KindAirflow:
		if env.Python == nil {
			return nil, errors.New("this triggerer has no Python trigger runtime for Airflow trigger classes (triggerer --python-triggers)")
		}
		return env.Python.Start(t, fire)
	}
	return nil, fmt.Errorf("%w: unknown kind %s (want one of %s)", ErrInvalid, show(kind), strings.Join(kindOrder, ", "))
}

// once lets a started trigger fire at most once and never after stop.
// Whoever claims it first wins: the firing path (then fn runs) or stop
// (then fn never does).
type once struct {
	done atomic.Bool
	fn   func(Event)
}

// claim reports whether the caller won the right to fire.
func (o *once) claim() bool { return o.done.CompareAndSwap(false, true) }

// fire calls fn with ev unless the trigger fired or was stopped already.
func (o *once) fire(ev Event) {
	if o.claim() {
		o.fn(ev)
	}
}

// cancel makes every later fire a no-op.
func (o *once) cancel() { o.done.Store(true) }
