// Package execution is the Execution API's wire contract and its client: the
// HTTP API under /execution/ through which a worker acts for the task
// instances it runs (Airflow 3's task-execution interface, AIP-72).
//
// Two tokens (Airflow's model): the activity carries a long-lived workload
// token, accepted only by PATCH task-instances/{id}/run; run answers with a
// short-lived execution token for every other call. The server refreshes it
// through the Refreshed-API-Token response header; TaskClient picks that up.
// A token acts only for its own task instance and try: its subject must
// match the path, else 403; connections, variables and XComs answer 403 to
// the token of a try that is over or of an earlier try; XComs are read only
// within the task's own DAG run and written only for the task itself (403).
// Expired, forged or wrong-kind tokens get 401.
//
// The API is CalVer-versioned: clients send APIVersion in the
// Taskwire-API-Version header.
package execution
