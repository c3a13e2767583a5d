package cli

import (
	"net"
	"strings"
)

// loopback reports whether a listen address ("host:port") is reachable only
// from this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// exposure is what serve would open to the network unprotected.
type exposure struct {
	listen, natsListen string
	operatorToken      bool
	embedded           bool
	natsUser           bool
}

// problems lists what is open off loopback without protection: the public
// API without an operator token (anyone reaching it could run commands on
// the workers), the embedded NATS without authentication (every bucket
// and subject).
func (e exposure) problems() []string {
	var out []string
	if !loopback(e.listen) && !e.operatorToken {
		out = append(out, "--listen "+e.listen+" is off loopback and no --operator-token is set: anyone who reaches it can submit commands that workers run")
	}
	if e.embedded && !loopback(e.natsListen) && !e.natsUser {
		out = append(out, "--nats-listen "+e.natsListen+" is off loopback and the embedded NATS has no --nats-user/--nats-password: anyone who reaches it can read and write every bucket and subject")
	}
	return out
}
