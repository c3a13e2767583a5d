package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlagsEnv(t *testing.T) {
	t.Setenv("TASKWIRE_CAPACITY", "12")
	t.Setenv("TASKWIRE_DEAD_AFTER", "45s")
	o, err := parseFlags([]string{"--capacity", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Capacity != 3 || o.cfg.DeadAfter != 45*time.Second {
		t.Errorf("capacity %d dead after %s: want the flag's 3, the env's 45s", o.cfg.Capacity, o.cfg.DeadAfter)
	}
}

// TestParseFlagsBadEnv: a bad TASKWIRE_* value stops the triggerer at
// start with the variable named.
func TestParseFlagsBadEnv(t *testing.T) {
	t.Setenv("TASKWIRE_DEAD_AFTER", "soon")
	_, err := parseFlags(nil)
	if err == nil || !strings.Contains(err.Error(), `TASKWIRE_DEAD_AFTER="soon"`) {
		t.Fatalf("err = %v, want one naming TASKWIRE_DEAD_AFTER=\"soon\"", err)
	}
}
