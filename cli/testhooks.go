//go:build taskwire_testhooks

package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/taskwire/taskwire/executor"
)

// EnvTestFaultDropRunEnds, in a binary built for tests only (the
// taskwire_testhooks build tag; internal/testbin builds with it), makes
// the executor record task ends without telling their DAG runs: what an
// executor that dies right after each end leaves behind.
const EnvTestFaultDropRunEnds = "TASKWIRE_TEST_FAULT_DROP_RUN_ENDS"

// applyTestHooks applies the fault injection the test binary's
// environment asks for.
func applyTestHooks(ex *executor.Executor, log *slog.Logger) error {
	v, ok := os.LookupEnv(EnvTestFaultDropRunEnds)
	if !ok {
		return nil
	}
	drop, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%s=%q: want a boolean", EnvTestFaultDropRunEnds, v)
	}
	if drop {
		log.Warn("fault injection: task ends are not told to their DAG runs (" + EnvTestFaultDropRunEnds + ")")
		ex.SetFaultDropRunEnds(true)
	}
	return nil
}
