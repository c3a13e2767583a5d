package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// The task binary is built from the bench's own source tree wherever the
// bench runs: from a directory outside any module, it is still the small
// taskbin, not a fallback to the bench binary itself (whose 30 MB start
// made every raw limit and ratio of such a run meaningless).
func TestBuildTaskBinOutsideTheModule(t *testing.T) {
	root := sourceModuleDir()
	if root == "" {
		t.Fatal("sourceModuleDir: the source tree of this test was not found")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "bench", "taskbin")); err != nil {
		t.Fatalf("sourceModuleDir %s is not the module root: %v", root, err)
	}
	t.Chdir(t.TempDir()) // not the checkout (no go.mod here or, on this machine, above)
	bin, err := BuildTaskBin(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&0o111 == 0 {
		t.Fatalf("%s is not executable: %v", bin, st.Mode())
	}
	if self, err := os.Executable(); err == nil {
		if sst, err := os.Stat(self); err == nil && st.Size() >= sst.Size() {
			t.Errorf("task binary %d bytes, this test binary %d: want the small taskbin", st.Size(), sst.Size())
		}
	}
}
