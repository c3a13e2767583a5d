// Command stamp is a no-op task for benchmarks: it writes the time it started
// (Unix nanoseconds) to $STAMP_DIR/$TASKWIRE_TI_ID and exits 0.
package main

import (
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	now := time.Now().UnixNano()
	dir := os.Getenv("STAMP_DIR")
	if dir == "" {
		return
	}
	_ = os.WriteFile(filepath.Join(dir, os.Getenv("TASKWIRE_TI_ID")), []byte(strconv.FormatInt(now, 10)), 0o644)
}
