package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// The worker registry: every HeartbeatInterval the worker writes its entry
// (queues, slots, running tasks, state) to the workers bucket, one write per
// interval whatever the number of tasks, and it watches its drain key. An
// operator's drain request (executor workers drain ID) makes it stop pulling
// and finish its running tasks; it then says so in its entry and its log,
// and stays up until it is stopped. Stop deletes the entry, so only a worker
// that died is listed as lost.

// buildVersion is the version of the running binary from its build info.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	if v == "" {
		v = "unknown"
	}
	return v
}

// runtimeNames says each served queue's runtime as "QUEUE=PROGRAM".
func (c Config) runtimeNames() []string {
	out := make([]string, 0, len(c.Queues))
	for _, q := range c.Queues {
		prog := "command"
		if rt := c.Runtimes[q]; rt.sdk() {
			prog = filepath.Base(rt.Command[0])
		}
		out = append(out, q+"="+prog)
	}
	slices.Sort(out)
	return out
}

// Draining reports whether an operator asked the worker to drain.
func (w *Worker) Draining() bool { return w.draining.Load() }

// info is the worker's registry entry now.
func (w *Worker) info(now time.Time) activity.WorkerInfo {
	running := w.Running()
	state := activity.MemberLive
	if w.Draining() {
		state = activity.MemberDraining
	}
	wi := activity.WorkerInfo{
		ID: w.cfg.ID, Hostname: w.cfg.Hostname, Version: w.cfg.Version,
		Queues: w.cfg.Queues, Concurrency: w.cfg.Concurrency,
		FreeSlots: max(0, w.cfg.Concurrency-running), Running: running,
		Runtimes: w.runtimes, State: state, StartedAt: w.startedAt, LastHeartbeat: now,
	}
	if down, since, lastErr := w.api.state(); down {
		wi.State, wi.APIUnreachableSince, wi.APIError = activity.MemberAPIUnreachable, &since, lastErr
	}
	return wi
}

// APIReachable reports whether the worker's last calls reached the
// Execution API; while not, it pulls nothing.
func (w *Worker) APIReachable() bool {
	down, _, _ := w.api.state()
	return !down
}

// register writes the worker's entry.
func (w *Worker) register(ctx context.Context) error {
	b, err := json.Marshal(w.info(time.Now().UTC()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, max(2*w.cfg.HeartbeatInterval, 5*time.Second))
	defer cancel()
	if _, err := w.registry.Put(ctx, queue.WorkerKey(w.cfg.ID), b); err != nil {
		return fmt.Errorf("registry heartbeat: %w", err)
	}
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.registryBeats.Inc()
	}
	return nil
}

// startRegistry clears a drain request left for an earlier worker of the
// same id, writes the first entry and starts the heartbeat (which also
// looks for drain requests) and the Execution API probe.
func (w *Worker) startRegistry(ctx context.Context) error {
	if err := w.registry.Delete(ctx, queue.DrainKey(w.cfg.ID)); err != nil && !errors.Is(err, queue.ErrKeyNotFound) {
		return fmt.Errorf("clear drain request: %w", err)
	}
	if err := w.register(ctx); err != nil {
		return err
	}
	// The loops live as long as the worker, not as Start's ctx.
	regCtx, cancel := context.WithCancel(context.Background())
	w.regCancel = cancel
	w.regWG.Add(2)
	go func() {
		defer w.regWG.Done()
		w.registryLoop(regCtx)
	}()
	go func() {
		defer w.regWG.Done()
		w.probeLoop(regCtx)
	}()
	return nil
}

// registryLoop heartbeats the entry and acts on drain requests until ctx
// ends. A drain request is read with one get per heartbeat, not watched:
// a watch is a consumer on the bucket's stream, and a stream has room for
// 1,000 of them.
func (w *Worker) registryLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	drained := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.regKick:
		case <-t.C:
		}
		if !w.Draining() {
			asked, err := w.cfg.Queue.DrainRequested(ctx, w.cfg.ID)
			switch {
			case err != nil && ctx.Err() == nil:
				w.log.Warn("read drain request", "err", err)
			case asked && w.draining.CompareAndSwap(false, true):
				w.log.Info("draining: an operator asked; stopped pulling, finishing the running tasks", "running", w.Running())
				w.pullCancel()
			}
		}
		if w.Draining() && !drained && w.Running() == 0 {
			drained = true
			w.log.Info("drained: no task running and none will be pulled; stop the worker when you like")
		}
		if err := w.register(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("registry heartbeat failed", "err", err)
		}
	}
}

// stopRegistry ends the heartbeat and deletes the entry: a worker that
// stopped is gone, not lost.
func (w *Worker) stopRegistry() {
	if w.regCancel == nil {
		return
	}
	w.regCancel()
	w.regWG.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.registry.Delete(ctx, queue.WorkerKey(w.cfg.ID)); err != nil {
		w.log.Warn("delete registry entry", "err", err)
	}
}
