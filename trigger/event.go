package trigger

import (
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// Kwargs of the event kind.
const kwName = "name"

// eventNameMax is the longest event name.
const eventNameMax = 200

// errNoEvents is the Err of an event trigger started without an event
// source.
const errNoEvents = "no external event source"

func parseEvent(kw map[string]any) (string, error) {
	const kind = KindEvent
	v := kw[kwName]
	if v == nil {
		return "", missing(kind, kwName)
	}
	name, err := stringArg(kind, kwName, v)
	if err != nil {
		return "", err
	}
	if name == "" || len(name) > eventNameMax {
		return "", kwargError(kind, kwName, v, "is not 1-%d characters long", eventNameMax)
	}
	for i := 0; i < len(name); i++ {
		if !eventNameByte(name[i]) {
			return "", kwargError(kind, kwName, v, "has %q: use only A-Z a-z 0-9 _ . : -", rune(name[i]))
		}
	}
	return name, nil
}

func eventNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '_' || c == '.' || c == ':' || c == '-'
}

func normalizeEvent(kw map[string]any, _ time.Time) (map[string]any, error) {
	name, err := parseEvent(kw)
	if err != nil {
		return nil, err
	}
	return map[string]any{kwName: name}, nil
}

// eventTrigger is a started event trigger: a subscription, no goroutine
// of its own.
type eventTrigger struct {
	once
	name string
	// subscribing is set while Subscribe runs: a delivery then may be on
	// Start's caller's goroutine, so fire is called from a new one.
	subscribing atomic.Bool
}

func startEvent(env *Env, t activity.Trigger, fire func(Event)) (func(), error) {
	name, err := parseEvent(t.Kwargs)
	if err != nil {
		return nil, err
	}
	if env.Events == nil {
		o := &once{fn: fire}
		tm := time.AfterFunc(0, func() { o.fire(Event{Err: errNoEvents}) })
		return func() {
			o.cancel()
			tm.Stop()
		}, nil
	}
	e := &eventTrigger{once: once{fn: fire}, name: name}
	e.subscribing.Store(true)
	unsubscribe := env.Events.Subscribe(name, t.DeferredAt, e.deliver)
	e.subscribing.Store(false)
	return func() {
		e.cancel()
		if unsubscribe != nil {
			unsubscribe()
		}
	}, nil
}

func (e *eventTrigger) deliver(payload any) {
	if !e.claim() {
		return
	}
	ev := Event{Payload: map[string]any{"name": e.name, "payload": payload}}
	if e.subscribing.Load() {
		go e.fn(ev)
		return
	}
	e.fn(ev)
}
