// Command deferstamp is a deferring no-op task for benchmarks. Its first run
// writes the time it ends (Unix nanoseconds) to $STAMP_DIR/<ti>.defer and
// defers on an already-due timer through $TASKWIRE_DEFER_FILE; its resumed
// run writes the time it started to $STAMP_DIR/<ti>.resume.
package main

import (
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	start := time.Now().UnixNano()
	dir, ti := os.Getenv("STAMP_DIR"), os.Getenv("TASKWIRE_TI_ID")
	stamp := func(suffix string, t int64) {
		_ = os.WriteFile(filepath.Join(dir, ti+suffix), []byte(strconv.FormatInt(t, 10)), 0o644)
	}
	if os.Getenv("TASKWIRE_NEXT_METHOD") != "" {
		stamp(".resume", start)
		return
	}
	spec := `{"trigger":"timedelta","kwargs":{"delta":0},"next_method":"resume"}`
	if err := os.WriteFile(os.Getenv("TASKWIRE_DEFER_FILE"), []byte(spec), 0o644); err != nil {
		os.Exit(1)
	}
	stamp(".defer", time.Now().UnixNano())
}
