package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/executor"
	"github.com/taskwire/taskwire/queue"
)

// ModeRecords runs RunRecordsChild; only the bench binary has it.
const ModeRecords = "records"

// StatusRecordsReady is the line RunRecordsChild writes once its executor is
// ready: "ready SECONDS HEAP_BYTES LIST_MS DECODED".
const StatusRecordsReady = "ready "

// recordsWindow bounds the record writes awaiting their acknowledgement
// (below nats.go's 4,000 async publishes outstanding).
const recordsWindow = 1024

// Records is the records phase at one size: an executor started on that
// many finished task-instance records.
type Records struct {
	Records int `json:"records"`
	// RecordBytes is the size of one stored record.
	RecordBytes int `json:"record_bytes"`
	// WriteSeconds is how long writing the records (beyond the previous
	// size's) took.
	WriteSeconds float64 `json:"write_s"`
	// ReadySeconds is the first executor child's time from New to Start
	// returning: the records were written by the bench, not by an
	// executor, so it reads every record once (the migration of a store
	// without a snapshot), and its clean stop
	// leaves the counts' snapshot.
	ReadySeconds float64 `json:"ready_s"`
	// RSSMB is the child's resident set once ready (after a GC), HeapMB
	// its Go heap in use.
	RSSMB  float64 `json:"rss_mb"`
	HeapMB float64 `json:"heap_mb"`
	// ListMillis is GET-equivalent List of the newest 100 successes, then
	// the next page, summed.
	ListMillis float64 `json:"list_ms"`
	// Decoded is how many records the first child decoded to start.
	Decoded int64 `json:"decoded"`
	// Restart is the second child, started on the same records after the
	// first stopped: from the snapshot.
	Restart RecordsStart `json:"restart"`
	// Error is why the executor could not start on this many (the phase
	// stops at the first such size).
	Error string `json:"error,omitempty"`
}

// RecordsStart is one executor child's start in the records phase.
type RecordsStart struct {
	ReadySeconds float64 `json:"ready_s"`
	RSSMB        float64 `json:"rss_mb"`
	HeapMB       float64 `json:"heap_mb"`
	ListMillis   float64 `json:"list_ms"`
	Decoded      int64   `json:"decoded"`
}

// records runs the records phase: a fresh embedded NATS under dir, then for
// each size (ascending) the records written up to it and an executor child
// (ModeRecords) started on them, measured, stopped.
func records(ctx context.Context, cfg Config, dir string, prog *progress) ([]Records, error) {
	emb, err := queue.StartEmbedded(queue.EmbeddedConfig{
		Host: "127.0.0.1", Port: -1, DataDir: filepath.Join(dir, "nats"), Logger: cfg.Logger.With("component", "nats"),
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	defer emb.Shutdown()
	nc, err := queue.Connect(ctx, queue.ConnConfig{URL: emb.ClientURL(), Name: "taskwire-bench", Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	q, err := queue.New(ctx, nc, queue.Config{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	b := q.Bucket(queue.BucketTaskInstances)
	var out []Records
	written := 0
	base := time.Now().UTC().Add(-24 * time.Hour)
	for _, n := range cfg.Records {
		r := Records{Records: n}
		prog.set(fmt.Sprintf("records: writing %d", n), n, func() int { return written })
		t0 := time.Now()
		from := written
		if err := b.PutMany(ctx, n-from, recordsWindow, func(i int) (string, []byte) {
			raw := finishedRecord(from+i, base)
			r.RecordBytes = len(raw)
			written = from + i + 1
			return fmt.Sprintf("ti-%08d", from+i), raw
		}); err != nil {
			return nil, err
		}
		r.WriteSeconds = time.Since(t0).Seconds()
		prog.set(fmt.Sprintf("records: executor on %d", n), 0, nil)
		var first RecordsStart
		err := recordsChild(ctx, cfg, emb.ClientURL(), &first)
		if err == nil {
			r.ReadySeconds, r.RSSMB, r.HeapMB, r.ListMillis, r.Decoded = first.ReadySeconds, first.RSSMB, first.HeapMB, first.ListMillis, first.Decoded
			prog.set(fmt.Sprintf("records: executor restarted on %d", n), 0, nil)
			err = recordsChild(ctx, cfg, emb.ClientURL(), &r.Restart)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			r.Error = err.Error()
			return append(out, r), nil
		}
		out = append(out, r)
	}
	return out, nil
}

// finishedRecord is the i-th record of the phase: a command task that
// succeeded (one in ten failed) after one try, as the executor stores it.
func finishedRecord(i int, base time.Time) []byte {
	q := base.Add(time.Duration(i) * time.Millisecond)
	start, end := q.Add(40*time.Millisecond), q.Add(1200*time.Millisecond)
	st := activity.StateSuccess
	if i%10 == 9 {
		st = activity.StateFailed
	}
	ti := &activity.TaskInstance{
		ID: fmt.Sprintf("ti-%08d", i), DagID: "etl_daily", TaskID: "load_" + strconv.Itoa(i%50), RunID: "scheduled__2026-12-0" + strconv.Itoa(1+i%9) + "T00:00:00+00:00",
		MapIndex: -1, Queue: "default", State: st, TryNumber: 1, MaxTries: 3,
		Entrypoint: activity.Entrypoint{Command: []string{"python", "-m", "etl.load", "--table", "orders_" + strconv.Itoa(i%50)}},
		Params:     map[string]any{"date": "2026-12-01", "batch": i},
		QueuedAt:   &q, StartDate: &start, EndDate: &end, UpdatedAt: end,
		WorkerID: "worker-" + strconv.Itoa(i%16), Hostname: "node-" + strconv.Itoa(i%16),
	}
	if st == activity.StateFailed {
		ti.Reason = "exit status 1"
	}
	raw, err := ti.MarshalRecord()
	if err != nil {
		panic(err) // a fixed, valid record
	}
	return raw
}

// recordsChild starts the executor child on natsURL, waits for its ready
// line, reads its RSS and stops it.
func recordsChild(ctx context.Context, cfg Config, natsURL string, r *RecordsStart) (err error) {
	cmd := exec.CommandContext(ctx, cfg.Self, "--nats-url", natsURL)
	cmd.Env = append(os.Environ(), EnvMode+"="+ModeRecords)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start records child: %w", err)
	}
	defer func() {
		_ = stdin.Close()
		if werr := cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("records child: %w: %s", werr, strings.TrimSpace(stderr.String()))
		}
	}()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), StatusRecordsReady)
		if !ok {
			continue
		}
		var heap int64
		if _, err := fmt.Sscanf(line, "%f %d %f %d", &r.ReadySeconds, &heap, &r.ListMillis, &r.Decoded); err != nil {
			return fmt.Errorf("records child: %q: %w", line, err)
		}
		r.HeapMB = float64(heap) / (1 << 20)
		rss, err := rssOf(cmd.Process.Pid)
		if err != nil {
			return err
		}
		r.RSSMB = float64(rss) / (1 << 20)
		return nil
	}
	return errors.Join(errors.New("executor child ended before it was ready"), sc.Err())
}

// RecordsChildMain is the bench binary's main in ModeRecords: it parses
// --nats-url from args, runs RunRecordsChild until SIGINT, SIGTERM or
// stdin's end, and returns the exit status.
func RecordsChildMain(args []string) int {
	fs := flag.NewFlagSet("bench records", flag.ContinueOnError)
	natsURL := fs.String("nats-url", "", "NATS URL")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := RunRecordsChild(ctx, *natsURL, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench records:", err)
		return 1
	}
	return 0
}

// RunRecordsChild is ModeRecords: an executor (record cache at its
// default) started on the NATS at natsURL, timed until Start returns,
// then a GC, one list of the newest 100 successes and the next page, and
// the StatusRecordsReady line on stdout; it stops when stdin closes.
func RunRecordsChild(ctx context.Context, natsURL string, stdin io.Reader, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	t0 := time.Now()
	nc, err := queue.Connect(ctx, queue.ConnConfig{URL: natsURL, Name: "taskwire-bench-records", Logger: log})
	if err != nil {
		return err
	}
	defer nc.Close()
	q, err := queue.New(ctx, nc, queue.Config{Logger: log})
	if err != nil {
		return err
	}
	ex, err := executor.New(executor.Config{Queue: q, RecordRetention: -1, Logger: log})
	if err != nil {
		return err
	}
	if err := ex.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = ex.Stop(context.Background()) }()
	ready := time.Since(t0).Seconds()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	l0 := time.Now()
	f := executor.Filter{States: []activity.State{activity.StateSuccess}, Limit: 100}
	page, err := ex.List(ctx, f)
	if err == nil && page.Next != "" {
		f.Cursor = page.Next
		_, err = ex.List(ctx, f)
	}
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	listMS := float64(time.Since(l0).Microseconds()) / 1000
	if _, err := fmt.Fprintf(stdout, "%s%.3f %d %.2f %d\n", StatusRecordsReady, ready, ms.HeapInuse, listMS, ex.LoadedRecords()); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, stdin)
	return nil
}
