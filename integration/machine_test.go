package integration

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/testbin"
)

// How the tests share the machine (2 cores, often shared with other work).
// There are four kinds of test:
//
//   - The first (TestAirflowExecutor, parallel(t, first)) starts at once,
//     beside every other kind: it is the package's longest test (Airflow's
//     start, then DAG runs and restarts of Airflow's processes), which,
//     started after the others, was the package's tail. Airflow's start
//     (a minute of Python imports) is its heavy part, so it runs beside the
//     storms, whose bounds have room for it; what is left of it when the
//     timed tests run mostly waits.
//   - Storms call parallel(t, storm): they run first, stormsAtOnce at a
//     time, before any other but the first. They push thousands of tasks against a
//     deadline (TestWorkerStorm, TestTriggererLoss) or kill their NATS
//     server during a run of hundreds; their services are built without
//     -race, so their bounds have room for one other storm beside them (a
//     heavy one beside a light one: longFirst orders them so), not for the
//     rest of the package.
//   - Timed tests call parallel(t, timed): they measure time against short
//     bounds (a kill grace, a zombie threshold of 2 s, a token's 2 s life, a
//     1 s lost-after, a fetch wait, running time against a 3 s execution
//     timeout) or race a signal, and are light (they mostly wait). They run
//     after the storms, timedAtOnce at a time, and never beside a
//     shared test: a shared test's Airflow start, browser or log storm
//     starves a heartbeat long enough to fail them.
//   - Shared tests call parallel(t, shared): they wait on processes, Airflow,
//     a browser or a fuzzer more than they compute, and nothing in them is
//     timed tight. They run last, -parallel at a time (parallelDefault when
//     go test is given none), the longest (longFirst) first, the others in
//     source order.
//
// Go's own -parallel bound would hold a slot for a test waiting for its
// kind's turn, so TestMain takes the -parallel given (or parallelDefault)
// for the shared tests and lifts go test's own bound; every top-level
// parallel test here goes through parallel().
//
// What is built with -race (the package is CPU-bound on 2 cores, and a
// -race process costs several times the CPU of a plain one):
//
//   - The NATS servers of a cluster (newCluster's default, and the
//     restart, node-loss, limits, partition and Airflow tests' own) are
//     upstream nats-server processes built without -race
//     (natstest.RunProcess, Exec): the broker's code is not ours to race
//     check, and in the -race test binary it was a quarter of the CPU.
//     Tests that need a server's insides or options a config file of
//     Exec's does not carry (Connz, TLS, accounts, operators) run it in
//     process (natstest.RunServerWith).
//   - The services (executor, worker, triggerer) are built with -race
//     under go test -race in the tests whose point is their cross-process
//     paths: the faults, restarts, partitions, NATS outages, the DAG and
//     pool correctness tests, the executor replicas, and the task,
//     deferral, SDK, shutdown and retention tests. Two kinds of test run
//     them built without -race. The load tests, which push many tasks
//     through paths the others race check already (clusterOpts.load):
//     TestWorkerStorm, TestTriggererLoss, TestRateLimitedWaits,
//     TestChattyTasksDoNotWedgeTheCluster and
//     TestBigLogStreamsWithBoundedMemory (whose executor memory bound a
//     -race build distorts). And the tests of what surrounds those paths
//     (clusterOpts.plain, or buildBins(t, testbin.NoRace)): Airflow
//     (TestAirflowExecutor, the TestAirflowRuntime* tests,
//     TestComposeAirflowWorker), the browser, CLI, compose and
//     service-file tests, TLS, NATS auth and tokens, the NAT worker, the
//     API's input checks (schemathesis, malformed input, ids and sizes):
//     their -race CPU bought no race checking the others lack, in a
//     package that is CPU-bound.
//     The services' own packages run their unit tests with -race.
//   - Task runtimes (the Go SDK's examples/gotasks) are never built with
//     -race (testbin.NoRace).
//
// TASKWIRE_TEST_CPU_REPORT=1 prints, at the end, per test its wall time
// and the CPU of its child processes by process (and logs each test's as
// it ends): how to see where the package's CPU goes.
const (
	parallelDefault = 4
	timedAtOnce     = 2
	stormsAtOnce    = 2
	firstAtOnce     = 1
)

// longFirst orders the first tests of a kind (each kind keeps its own
// order), before the others in source order.
//
// Shared: the two longest, which, started last, would be the package's
// tail (TestSchemathesis was, once TestAirflowExecutor became the first).
// Not TestDemoScript too: with it and TestAirflowExecutor beside them (at
// a load of 50 from other work on the machine), the four starved one
// another past their bounds (schemathesis's 10 s to load the document,
// demo.sh's 5 minutes, TestRateLimitedWaits' 10).
//
// Storms: the heaviest (≈ 1.5 cores) beside the lightest (mostly a NATS
// outage's wait), then the other two as those end.
var longFirst = []string{
	"TestRateLimitedWaits", // 1,000 deferred Go SDK tasks, then 50 s at 20 req/s
	"TestSchemathesis",     // ≈ 40 s of fuzzing: started in source order, it was the tail
	"TestTriggererLoss",    // 2,000 resumes
	"TestNATSRestart",      // 300 tasks across an 8 s outage
}

// kind is what a test may run beside; see parallel.
type kind int

const (
	first kind = iota
	storm
	timed
	shared
	kinds
)

func (k kind) String() string { return [...]string{"first", "storm", "timed", "shared"}[k] }

// scheduler admits the parallel tests in turns: the first at once, every
// storm before any timed test, every timed test before any shared one; within a kind, in
// the order the tests were registered (longFirst first, then the source
// order: go test runs every test up to its t.Parallel before it releases
// any), up to the kind's limit at once.
type scheduler struct {
	mu   sync.Mutex
	cond *sync.Cond
	// limit is how many tests of a kind run at once.
	limit [kinds]int
	// next is the registration number the next test gets (longFirst's
	// get negative ones); waiting holds, per kind, the numbers of the
	// registered tests not admitted yet, in order.
	next    int
	waiting [kinds][]int
	// unfinished counts, per kind, the registered tests not finished;
	// running, those admitted and not finished.
	unfinished, running [kinds]int
}

var machine = &scheduler{limit: [kinds]int{first: firstAtOnce, storm: stormsAtOnce, timed: timedAtOnce, shared: parallelDefault}}

func init() { machine.cond = sync.NewCond(&machine.mu) }

// setupParallel makes -parallel (when given) the number of shared tests at
// once, and lifts go test's own bound (see above). Call it from TestMain
// after flag.Parse.
func setupParallel() error {
	f := flag.Lookup("test.parallel")
	given := false
	flag.Visit(func(v *flag.Flag) { given = given || v.Name == "test.parallel" })
	if given {
		n, err := strconv.Atoi(f.Value.String())
		if err != nil || n < 1 {
			return fmt.Errorf("-parallel %s: want a positive number", f.Value)
		}
		machine.limit[shared] = n
		machine.limit[timed] = min(n, timedAtOnce)
		machine.limit[storm] = min(n, stormsAtOnce)
	}
	return flag.Set("test.parallel", "1000")
}

// parallel registers t as a test of kind k, calls t.Parallel, and returns
// once it is k's turn and one of its places is free. The place is given
// back when t and its cleanups have ended (its processes stopped).
func parallel(t *testing.T, k kind) {
	machine.mu.Lock()
	n := machine.next
	machine.next++
	if i := slices.Index(longFirst, t.Name()); i >= 0 {
		n = i - len(longFirst) // before every test registered in order
	}
	i, _ := slices.BinarySearch(machine.waiting[k], n)
	machine.waiting[k] = slices.Insert(machine.waiting[k], i, n)
	machine.unfinished[k]++
	machine.mu.Unlock()
	admitted := false
	// Registered before the test's own cleanups, so it runs after them.
	t.Cleanup(func() {
		machine.mu.Lock()
		defer machine.mu.Unlock()
		machine.unfinished[k]--
		if admitted {
			machine.running[k]--
		} else {
			machine.drop(k, n)
		}
		machine.cond.Broadcast()
	})
	t.Parallel()
	began := time.Now()
	machine.mu.Lock()
	defer machine.mu.Unlock()
	for machine.waiting[k][0] != n || machine.running[k] >= machine.limit[k] || machine.earlierUnfinished(k) {
		machine.cond.Wait()
	}
	machine.waiting[k] = machine.waiting[k][1:]
	machine.running[k]++
	admitted = true
	machine.cond.Broadcast()
	testbin.Track(t)
	// The wait is part of the test's time in go test's report.
	t.Logf("%s test: started after %s waiting for its turn", k, time.Since(began).Round(time.Millisecond))
}

// drop removes registration n from k's waiting list (a test that ended
// before its turn: it panicked in t.Parallel's wait).
func (m *scheduler) drop(k kind, n int) {
	for i, w := range m.waiting[k] {
		if w == n {
			m.waiting[k] = append(m.waiting[k][:i:i], m.waiting[k][i+1:]...)
			return
		}
	}
}

// earlierUnfinished says whether a test of a kind before k is not
// finished (k's tests wait for them all, but for the first's).
func (m *scheduler) earlierUnfinished(k kind) bool {
	for e := range k {
		if e != first && m.unfinished[e] > 0 {
			return true
		}
	}
	return false
}
