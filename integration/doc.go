// Package integration holds taskwire's end-to-end tests: they build the real
// binaries (executor, worker, the example Go SDK runtime) and run them as
// processes against a real nats-server on 127.0.0.1.
package integration
