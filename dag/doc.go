// Package dag is the scheduler side's domain: a DAG document (its tasks,
// their dependencies, trigger rules, mapping and schedule), its
// validation, Airflow's trigger rules as a pure function of upstream
// states, and the DAG-run record with the evaluation that decides which
// task instances are ready, skipped or upstream_failed after a change.
//
// It knows nothing of NATS or HTTP: the executor stores DAGs and runs
// through package queue and calls [Run.Evaluate] inside a compare-and-set
// of the run record, so two executor replicas evaluating the same task end
// decide each downstream task instance exactly once (the loser of the
// compare-and-set re-reads the record and finds nothing left to do).
//
// # Trigger rules
//
// [TriggerRule.Decide] follows Airflow's trigger_rule_dep.py: first the
// states a task is moved to without running (upstream_failed, skipped —
// the propagation of failures and skips), then whether it may run. A
// task with no upstream runs at once. Airflow subtracts removed upstream
// instances from the count only for mapped task instances; here they are
// always subtracted, so a removed upstream never leaves a run waiting on
// it forever. A cancelled upstream counts as failed.
package dag
