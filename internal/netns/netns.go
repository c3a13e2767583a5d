// Package netns makes Linux network namespaces for tests, so that a test
// can put a worker on a network of its own and cut, filter or NAT its
// traffic with iptables, without touching any network but the ones it
// makes: a namespace joined to the test's (root) namespace by a veth pair
// with private /30 addresses ([New]), or a namespace behind a router
// namespace that masquerades its traffic and drops connections from
// outside ([NewBehindNAT]). Everything is removed when the test ends.
//
// It needs root (CAP_NET_ADMIN), the ip command (iproute2) and iptables.
// [Require] skips a test, with the reason, only when not root; a missing
// command fails it, so CI (which runs as root) cannot skip silently.
package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Require skips t when not root, and fails it when ip or iptables is
// missing.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns: needs root to make network namespaces (CI runs the suite as root)")
	}
	for _, cmd := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("netns: %s not found (apt-get install iproute2 iptables): %v", cmd, err)
		}
	}
}

// NS is a network namespace made by the test.
type NS struct {
	t testing.TB
	// Name is the namespace's name (ip netns).
	Name string
	// Addr is the namespace's own address, as the other end sees it
	// (behind NAT: its private address, which the root namespace cannot
	// reach).
	Addr string
	// HostAddr is the root namespace's address on the veth pair: a
	// service listening there is reachable from the namespace (also
	// through the router of NewBehindNAT).
	HostAddr string
}

// run runs a command and fails the test with its output when it fails.
func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("netns: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var (
	usedMu sync.Mutex
	used   = map[string]bool{}
)

// subnet picks a free 10.x.y.0/30 block not on any interface and not
// picked before by this process, and returns its two host addresses.
func subnet(t testing.TB) (a, b string) {
	t.Helper()
	out, err := exec.Command("ip", "-o", "-4", "addr").Output()
	if err != nil {
		t.Fatalf("netns: ip addr: %v", err)
	}
	usedMu.Lock()
	defer usedMu.Unlock()
	for range 1000 {
		var r [4]byte
		_, _ = rand.Read(r[:])
		n := binary.BigEndian.Uint32(r[:])
		// 10.200.0.0 - 10.255.255.252, /30 aligned.
		x, y, z := 200+byte(n%56), byte(n>>8), byte(n>>16)&^3
		base := fmt.Sprintf("10.%d.%d.", x, y)
		key := fmt.Sprintf("%s%d", base, z)
		a, b = fmt.Sprintf("%s%d", base, z+1), fmt.Sprintf("%s%d", base, z+2)
		if used[key] || bytes.Contains(out, []byte(" "+base)) {
			continue
		}
		used[key] = true
		return a, b
	}
	t.Fatal("netns: no free 10.x.y.0/30 found")
	return "", ""
}

// name is a short random name (interface names have at most 15 bytes).
func name(prefix string) string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s%x", prefix, r)
}

// New makes a namespace joined to the root namespace by a veth pair: the
// root end has HostAddr, the namespace's end Addr (a /30 of 10.200.0.0/13
// that no interface uses), and its default route goes to HostAddr.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	n := &NS{t: t, Name: name("tw")}
	run(t, "ip", "netns", "add", n.Name)
	hostIf, nsIf := n.Name+"h", n.Name+"n"
	t.Cleanup(func() { n.remove(hostIf) })
	n.HostAddr, n.Addr = subnet(t)
	run(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	run(t, "ip", "link", "set", nsIf, "netns", n.Name)
	run(t, "ip", "addr", "add", n.HostAddr+"/30", "dev", hostIf)
	run(t, "ip", "link", "set", hostIf, "up")
	n.Run("ip", "link", "set", "lo", "up")
	n.Run("ip", "addr", "add", n.Addr+"/30", "dev", nsIf)
	n.Run("ip", "link", "set", nsIf, "up")
	n.Run("ip", "route", "add", "default", "via", n.HostAddr)
	return n
}

// NewBehindNAT makes a namespace behind a router namespace. The router
// is joined to the root namespace as New does (the root end is HostAddr)
// and to the returned namespace by a second veth pair, on a private /30
// the root namespace has no route to; it forwards and masquerades the
// namespace's outbound traffic and drops every connection that starts
// outside (so nothing can connect to the namespace, as behind a home or
// cloud NAT), although the root namespace has a route to the inside
// through the router. Router is the router's namespace.
func NewBehindNAT(t testing.TB) (inner, router *NS) {
	t.Helper()
	router = New(t)
	inner = &NS{t: t, Name: name("tw")}
	run(t, "ip", "netns", "add", inner.Name)
	rIf, iIf := inner.Name+"r", inner.Name+"n"
	t.Cleanup(func() { inner.remove("") })
	rAddr, iAddr := subnet(t)
	inner.Addr, inner.HostAddr = iAddr, router.HostAddr
	run(t, "ip", "link", "add", rIf, "type", "veth", "peer", "name", iIf)
	run(t, "ip", "link", "set", rIf, "netns", router.Name)
	run(t, "ip", "link", "set", iIf, "netns", inner.Name)
	router.Run("ip", "addr", "add", rAddr+"/30", "dev", rIf)
	router.Run("ip", "link", "set", rIf, "up")
	inner.Run("ip", "link", "set", "lo", "up")
	inner.Run("ip", "addr", "add", iAddr+"/30", "dev", iIf)
	inner.Run("ip", "link", "set", iIf, "up")
	inner.Run("ip", "route", "add", "default", "via", rAddr)
	outIf := router.Name + "n"
	router.Run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	router.Run("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", outIf, "-j", "MASQUERADE")
	// Inbound: only replies to what the inside started.
	router.Run("iptables", "-P", "FORWARD", "DROP")
	router.Run("iptables", "-A", "FORWARD", "-i", rIf, "-o", outIf, "-j", "ACCEPT")
	router.Run("iptables", "-A", "FORWARD", "-i", outIf, "-o", rIf, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	router.Run("iptables", "-A", "INPUT", "-i", outIf, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
	// The root namespace routes to the inside through the router (so that
	// a test's dial to it goes there, not to a real network) and is
	// dropped there.
	run(t, "ip", "route", "add", iAddr+"/32", "via", router.Addr)
	t.Cleanup(func() { _ = exec.Command("ip", "route", "del", iAddr+"/32").Run() })
	return inner, router
}

// remove deletes the namespace (and hostIf, the root end of its veth, when
// not empty); the processes in it must have ended.
func (n *NS) remove(hostIf string) {
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
	if hostIf != "" {
		_ = exec.Command("ip", "link", "del", hostIf).Run()
	}
}

// Run runs a command inside the namespace and fails the test when it fails.
func (n *NS) Run(args ...string) {
	n.t.Helper()
	run(n.t, append([]string{"ip", "netns", "exec", n.Name}, args...)...)
}

// Output runs a command inside the namespace and returns its combined
// output and error.
func (n *NS) Output(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	return string(out), err
}

// Command is the argv that runs bin with args inside the namespace (for
// exec.Command or testbin.Start: "ip" and the rest).
func (n *NS) Command(bin string, args ...string) (string, []string) {
	return "ip", append([]string{"netns", "exec", n.Name, bin}, args...)
}

// DropTCPTo drops the namespace's outbound TCP to port (iptables OUTPUT):
// the connections to it hang, as through a firewall that drops; every
// other port stays reachable. It returns the function that lifts it.
func (n *NS) DropTCPTo(port string) (lift func()) {
	n.t.Helper()
	rule := []string{"OUTPUT", "-p", "tcp", "--dport", port, "-j", "DROP"}
	n.Run(append([]string{"iptables", "-A"}, rule...)...)
	return func() {
		n.t.Helper()
		n.Run(append([]string{"iptables", "-D"}, rule...)...)
	}
}

// Dial reports whether a TCP connection from the root namespace to addr
// succeeds (for tests that check nothing outside can reach a namespace).
func Dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
