//go:build !taskwire_testhooks

package cli

import (
	"log/slog"

	"github.com/taskwire/taskwire/executor"
)

// applyTestHooks does nothing in a production build: fault injection is
// compiled only into the binaries tests build (cli/testhooks.go).
func applyTestHooks(*executor.Executor, *slog.Logger) error { return nil }
