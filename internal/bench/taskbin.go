package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// TaskBinPackage is the task binary's package, built by BuildTaskBin.
const TaskBinPackage = "github.com/taskwire/taskwire/cmd/bench/taskbin"

// BuildTaskBin builds cmd/bench/taskbin into dir with the go command and
// returns its path. It builds from the source tree this binary was built
// from when that tree is still at hand (so that the tasks are the bench's
// own version, wherever the bench runs from), else from the module the
// working directory is in. It fails when go is not on PATH or neither has
// the module's source (a bench binary copied elsewhere, a -trimpath
// build); the bench then re-executes itself instead.
func BuildTaskBin(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build task binary: %w", err)
	}
	out := filepath.Join(dir, "taskbin")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, TaskBinPackage)
	cmd.Dir = sourceModuleDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build task binary: go build %s: %w: %s", TaskBinPackage, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

// sourceModuleDir is the root of the module source this file was compiled
// from, when it still holds that module's go.mod; "" otherwise.
func sourceModuleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // internal/bench/taskbin.go
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(mod), "module github.com/taskwire/taskwire\n") {
		return ""
	}
	return root
}
