//go:build taskwire_testhooks

package executor

// SetFaultDropRunEnds is fault injection, compiled only into the binaries
// tests build (internal/testbin builds with the taskwire_testhooks tag):
// with drop, this executor records task ends without telling their DAG
// runs, which is what an executor that died right after recording each
// end leaves behind; the start-up or periodic scan of an executor (not
// this one's: it skips the scan too) finishes it.
func (e *Executor) SetFaultDropRunEnds(drop bool) {
	if e.dags != nil {
		e.dags.dropEnds.Store(drop)
	}
}
