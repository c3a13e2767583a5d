package executor

import "context"

// planSchedule arranges the next scheduled run of rec's DAG.
func (e *Executor) planSchedule(ctx context.Context, rec *DagRecord) {}
