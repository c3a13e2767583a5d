package worker

import (
	"os"
	"testing"
)

func BenchmarkSessionMembers(b *testing.B) {
	sid := os.Getpid()
	for b.Loop() {
		sessionMembers(sid)
	}
}
