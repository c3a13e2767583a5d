package queue_test

import (
	"errors"
	"strconv"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/queue"
)

func TestUpdateCASConcurrentCounter(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	kv := c.Bucket(queue.BucketTaskInstances)

	const goroutines, increments = 4, 50
	increment := func(old []byte) ([]byte, error) {
		n := 0
		if old != nil {
			var err error
			if n, err = strconv.Atoi(string(old)); err != nil {
				return nil, err
			}
		}
		return []byte(strconv.Itoa(n + 1)), nil
	}
	var g errgroup.Group
	for range goroutines {
		g.Go(func() error {
			for range increments {
				if _, err := queue.UpdateCAS(ctx, kv, "counter", increment); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("UpdateCAS: %v", err)
	}
	e, err := kv.Get(ctx, "counter")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got, want := string(e.Value()), strconv.Itoa(goroutines*increments); got != want {
		t.Fatalf("counter = %s, want %s", got, want)
	}
}

func TestUpdateCASMutateError(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	kv := c.Bucket(queue.BucketTaskInstances)

	rev, err := queue.UpdateCAS(ctx, kv, "ti", func(old []byte) ([]byte, error) {
		if old != nil {
			t.Errorf("old = %q, want nil for a new key", old)
		}
		return []byte("v1"), nil
	})
	if err != nil || rev == 0 {
		t.Fatalf("UpdateCAS create = %d, %v", rev, err)
	}
	errStop := errors.New("stop")
	_, err = queue.UpdateCAS(ctx, kv, "ti", func(old []byte) ([]byte, error) {
		if string(old) != "v1" {
			t.Errorf("old = %q, want v1", old)
		}
		return nil, errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("UpdateCAS = %v, want errStop", err)
	}
	// A deleted key is absent: UpdateCAS creates it again.
	if err := kv.Delete(ctx, "ti"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	rev2, err := queue.UpdateCAS(ctx, kv, "ti", func(old []byte) ([]byte, error) {
		if old != nil {
			t.Errorf("old = %q, want nil for a deleted key", old)
		}
		return []byte("v2"), nil
	})
	if err != nil || rev2 <= rev {
		t.Fatalf("UpdateCAS after delete = %d, %v; want a revision > %d", rev2, err, rev)
	}
}
