package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrDiskLow is matched (errors.Is) by [Embedded.CheckDisk]'s error when
// the store's disk has less free space than asked.
var ErrDiskLow = errors.New("queue: disk space low")

// DiskFree is the free and total bytes of the filesystem holding dir.
func DiskFree(dir string) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// MinFreeDefault is how much free disk [Embedded.CheckDisk] asks for when
// given 0: 2% of the filesystem, at least 16 MiB and at most 1 GiB. Writes
// are refused below it, before JetStream itself runs out of space: a
// JetStream store that met ENOSPC refuses every later write until the
// server restarts, while a refusal here ends once space is freed.
func MinFreeDefault(total int64) int64 {
	return min(max(total/50, 16<<20), 1<<30)
}

// CheckDisk says whether the embedded server's store has at least minFree
// bytes free on its disk (MinFreeDefault when minFree is 0); its error
// matches ErrDiskLow when it has not.
func (e *Embedded) CheckDisk(minFree int64) error {
	dir := e.srv.StoreDir()
	free, total, err := DiskFree(dir)
	if err != nil {
		return err
	}
	if minFree <= 0 {
		minFree = MinFreeDefault(total)
	}
	if free < minFree {
		return fmt.Errorf("%w: %d bytes free on the disk of %s, below the %d kept free; free some space", ErrDiskLow, free, dir, minFree)
	}
	return nil
}

// defaultMaxStore is 75% of the free space on dataDir's disk plus the bytes
// under dataDir/jetstream; 0 when the disk cannot be read.
func defaultMaxStore(dataDir string) int64 {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return 0
	}
	free, _, err := DiskFree(dataDir)
	if err != nil {
		return 0
	}
	var used int64
	_ = filepath.WalkDir(filepath.Join(dataDir, "jetstream"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, ierr := d.Info(); ierr == nil {
				used += info.Size()
			}
		}
		return nil
	})
	return free/4*3 + used
}
