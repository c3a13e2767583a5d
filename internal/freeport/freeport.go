// Package freeport hands tests ports for servers that a child process
// binds later (`--listen 127.0.0.1:PORT`).
//
// A port found free by listening on :0 and closing again comes from the
// kernel's ephemeral range, and the kernel may give it to any other
// listener on :0 or outgoing connection before the child binds it: then
// the child fails with "address already in use", or, worse, the test's
// probes reach whatever took the port (CI once saw a test's health probe
// land on a worker's task channel). Ports from here lie below the
// ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), which the
// kernel never hands out on its own, and are not handed out twice by one
// process; each is checked free by binding it first.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the bottom of the range ports are picked from.
const lowest = 10000

var (
	mu     sync.Mutex
	issued = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

// Port returns a port free on host a moment ago, outside the kernel's
// ephemeral range when that leaves room, and not returned before by this
// process.
func Port(host string) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	hi := ephemeralLow()
	if hi-lowest < 1000 {
		// No room below the range: fall back to the kernel's choice.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	var last error
	for range 200 {
		p := lowest + rand.IntN(hi-lowest)
		if issued[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			last = err
			continue
		}
		_ = ln.Close()
		issued[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free port on %s below %d: %v", host, hi, last)
}

// Addr returns host:port with a port as [Port] gives it.
func Addr(host string) (string, error) {
	p, err := Port(host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}
