package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// taskBinPackage is the task binary's package, built by buildTaskBin.
const taskBinPackage = "github.com/taskwire/taskwire/cmd/bench/taskbin"

// buildTaskBin builds cmd/bench/taskbin into dir with the go command, from
// the module the working directory is in, and returns its path. It fails
// when go is not on PATH or the module's source is not at hand (a bench
// binary copied elsewhere); the bench then re-executes itself instead.
func buildTaskBin(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build task binary: %w", err)
	}
	out := filepath.Join(dir, "taskbin")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, taskBinPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build task binary: go build %s: %w: %s", taskBinPackage, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}
