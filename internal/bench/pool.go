package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/taskwire/taskwire/client"
)

// benchPool is the pool of the pool phase.
const benchPool = "bench"

// PoolFigures are the pool phase's: command tasks through a pool whose
// slots are the workers' (so the pool limits nothing the workers do not),
// against the same phase without a pool, and the admission latency.
type PoolFigures struct {
	Throughput
	Slots int `json:"slots"`
	// Admission is from a task's record giving back its slots (as the
	// executor sees it) to the next waiting task's activity published.
	Admission Latency `json:"admission"`
}

// setBenchPool makes the bench pool and waits until the executor has it.
func setBenchPool(ctx context.Context, c *cluster, slots int) error {
	if _, err := c.api.SetPool(ctx, benchPool, client.PoolSettings{Slots: slots}); err != nil {
		return fmt.Errorf("set pool: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := c.api.Pool(ctx, benchPool)
		if err == nil && p.Slots == slots {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool %s not seen by the executor: %v", benchPool, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
