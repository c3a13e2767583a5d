package queue_test

import (
	"fmt"
	"testing"

	"github.com/taskwire/taskwire/queue"
)

// TestScanReadsRevisionRanges writes, rewrites and deletes keys and checks
// that Scan reads each stored value of a range once, in order, without
// deletions, stops when asked, and that Latest tells current revisions.
func TestScanReadsRevisionRanges(t *testing.T) {
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	b := c.Bucket(queue.BucketTaskInstances)
	revs := map[string]uint64{}
	for i := range 50 {
		key := fmt.Sprintf("k%02d", i)
		rev, err := b.Put(ctx, key, []byte(fmt.Sprintf("v%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		revs[key] = rev
	}
	// k00 rewritten (its first revision stays in the history), k01 deleted.
	rev, err := b.Put(ctx, "k00", []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	old00 := revs["k00"]
	revs["k00"] = rev
	if err := b.Delete(ctx, "k01"); err != nil {
		t.Fatal(err)
	}
	first, last, err := b.Bounds(ctx)
	if err != nil || first != 1 || last != 52 {
		t.Fatalf("Bounds = %d, %d, %v; want 1, 52", first, last, err)
	}
	var got []uint64
	if err := b.Scan(ctx, 0, 0, func(v queue.StoredValue) bool {
		got = append(got, v.Revision)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	// 51 puts, no deletion marker.
	if len(got) != 51 || got[0] != 1 || got[50] != 51 {
		t.Fatalf("Scan all: %d values %v", len(got), got)
	}
	var keys []string
	if err := b.Scan(ctx, 10, 13, func(v queue.StoredValue) bool {
		keys = append(keys, fmt.Sprintf("%s=%s@%d", v.Key, v.Value, v.Revision))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if want := "[k09=v9@10 k10=v10@11 k11=v11@12]"; fmt.Sprint(keys) != want {
		t.Errorf("Scan [10, 13) = %v, want %s", keys, want)
	}
	n := 0
	if err := b.Scan(ctx, 1, 0, func(queue.StoredValue) bool { n++; return n < 3 }); err != nil || n != 3 {
		t.Errorf("Scan stopped by fn after %d, %v; want 3", n, err)
	}
	if err := b.Scan(ctx, 60, 0, func(queue.StoredValue) bool { t.Error("value past the end"); return true }); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		key  string
		rev  uint64
		want bool
	}{{"k00", revs["k00"], true}, {"k00", old00, false}, {"k01", revs["k01"], false}, {"k02", revs["k02"], true}, {"nope", 1, false}} {
		if ok, err := b.Latest(ctx, tc.key, tc.rev); err != nil || ok != tc.want {
			t.Errorf("Latest(%s, %d) = %v, %v; want %v", tc.key, tc.rev, ok, err, tc.want)
		}
	}
	// PutMany: 100 more, each readable.
	if err := b.PutMany(ctx, 100, 16, func(i int) (string, []byte) { return fmt.Sprintf("m%03d", i), []byte{byte(i)} }); err != nil {
		t.Fatal(err)
	}
	if _, last, err := b.Bounds(ctx); err != nil || last != 152 {
		t.Errorf("after PutMany: last %d, %v; want 152", last, err)
	}
	if e, err := b.Get(ctx, "m099"); err != nil || e.Value()[0] != 99 {
		t.Errorf("Get(m099) = %v, %v", e, err)
	}
}
