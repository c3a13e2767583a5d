package freeport

import (
	"net"
	"testing"
)

// Ports come from below the ephemeral range, are distinct, and can be bound.
func TestPortBelowEphemeralDistinctAndFree(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p, err := Port("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if low-lowest >= 1000 && (p < lowest || p >= low) {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		a, err := Addr("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("listen on %s: %v", a, err)
		}
		ln.Close()
	}
}
