package worker

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

// authTimeoutMax bounds the time a runtime connection has to present its
// secret (protocol.AuthFrame on comm, protocol.LogStreamHeader on logs):
// the SDKs send it the moment they connect.
const authTimeoutMax = 10 * time.Second

// authTimeout is the deadline of one connection's auth.
func (w *Worker) authTimeout() time.Duration { return min(w.cfg.HandshakeTimeout, authTimeoutMax) }

// Channels of a runtime connection, for logs and the rejected counter.
const (
	chanComm = "comm"
	chanLogs = "logs"
)

// authCounters counts the runtime connections refused, by channel.
type authCounters struct{ comm, logs atomic.Int64 }

// errSDKTooOld explains a runtime that connects without a secret.
const errSDKTooOld = "a taskwire SDK older than the comm secret does not send it: upgrade the runtime's SDK to one that reads " + protocol.EnvCommSecret

// checkPeer refuses a unix-socket peer running as another user
// (SO_PEERCRED; the socket's directory already keeps them out, this is a
// second, cheap check). TCP peers are judged by their secret alone.
func checkPeer(c net.Conn) (string, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c.RemoteAddr().String(), nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return "unix", err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return "unix", err
	}
	if cerr != nil {
		return "unix", fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	peer := fmt.Sprintf("unix pid %d uid %d", cred.Pid, cred.Uid)
	if int(cred.Uid) != os.Getuid() {
		return peer, fmt.Errorf("peer uid %d is not the worker's %d", cred.Uid, os.Getuid())
	}
	return peer, nil
}

// authComm checks that c presents secret first (protocol.AuthFrame)
// within the auth deadline. The connection's deadline is cleared on
// success.
func (w *Worker) authComm(c net.Conn, secret string) (peer string, err error) {
	if peer, err = checkPeer(c); err != nil {
		return peer, err
	}
	_ = c.SetReadDeadline(time.Now().Add(w.authTimeout()))
	if err := protocol.ReadAuth(c, secret); err != nil {
		return peer, authErr(err, w.authTimeout())
	}
	_ = c.SetReadDeadline(time.Time{})
	return peer, nil
}

// authLogs reads a log connection's header line and checks its secret.
// The returned reader holds what follows the header.
func (w *Worker) authLogs(c net.Conn, secret string) (string, protocol.LogStreamHeader, *bufio.Reader, error) {
	var h protocol.LogStreamHeader
	peer, err := checkPeer(c)
	if err != nil {
		return peer, h, nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(w.authTimeout()))
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return peer, h, nil, errors.New("header line longer than 4096 bytes")
		}
		return peer, h, nil, authErr(err, w.authTimeout())
	}
	if h, err = protocol.ParseLogStreamHeader(line[:len(line)-1]); err != nil {
		return peer, h, nil, err
	}
	if !protocol.SecretEqual(h.Secret, secret) {
		return peer, h, nil, errors.New("log stream header: wrong secret")
	}
	_ = c.SetReadDeadline(time.Time{})
	return peer, h, br, nil
}

func authErr(err error, d time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no auth frame within %s", d)
	}
	return err
}

// reject closes a runtime connection that did not authenticate, counts it
// and logs it at warn.
func (w *Worker) reject(channel string, c net.Conn, peer string, why error, attrs ...any) {
	if channel == chanComm {
		w.authRejected.comm.Add(1)
	} else {
		w.authRejected.logs.Add(1)
	}
	w.log.Warn("runtime connection refused: it did not present the runtime's secret",
		append([]any{"channel", channel, "remote", peer, "err", why}, attrs...)...)
	c.Close()
}

// commGate accepts the comm connections of a cold runtime and gives the
// first one that presents the secret (won); the others are refused. It
// owns its goroutines: stop closes the listener and every connection
// still authenticating, and waits for them.
type commGate struct {
	w      *Worker
	ln     net.Listener
	secret string
	tiID   string
	won    chan net.Conn // the authenticated connection; buffered 1

	wg       sync.WaitGroup
	mu       sync.Mutex
	pending  map[net.Conn]bool
	decided  bool
	stopped  bool
	rejected int
	lastWhy  error
}

func newCommGate(w *Worker, ln net.Listener, secret, tiID string) *commGate {
	g := &commGate{w: w, ln: ln, secret: secret, tiID: tiID, won: make(chan net.Conn, 1), pending: map[net.Conn]bool{}}
	g.wg.Add(1)
	go g.accept()
	return g
}

func (g *commGate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.stopped || g.decided {
			g.mu.Unlock()
			g.refuse(c, "", errors.New("the runtime had already authenticated"))
			continue
		}
		g.pending[c] = true
		g.wg.Add(1)
		g.mu.Unlock()
		go func() {
			defer g.wg.Done()
			peer, err := g.w.authComm(c, g.secret)
			g.mu.Lock()
			delete(g.pending, c)
			if err == nil && !g.decided && !g.stopped {
				g.decided = true
				g.mu.Unlock()
				g.won <- c
				return
			}
			switch {
			case err == nil:
				err = errors.New("the runtime had already authenticated")
			case g.stopped && !g.decided:
				err = fmt.Errorf("no auth frame before the handshake ended (%v)", err)
			}
			g.mu.Unlock()
			g.refuse(c, peer, err)
		}()
	}
}

func (g *commGate) refuse(c net.Conn, peer string, err error) {
	if peer == "" {
		peer = c.RemoteAddr().String()
	}
	g.mu.Lock()
	g.rejected++
	g.lastWhy = err
	g.mu.Unlock()
	g.w.reject(chanComm, c, peer, err, "ti_id", g.tiID)
}

// stop stops accepting, closes the connections still authenticating and
// waits for the gate's goroutines. The won connection is the caller's.
func (g *commGate) stop() {
	g.mu.Lock()
	g.stopped = true
	for c := range g.pending {
		c.Close()
	}
	g.mu.Unlock()
	g.ln.Close()
	g.wg.Wait()
}

// settle waits for the won connection while the gate has connections in
// their auth, up to max, and at least a moment for one still in the
// listener's backlog; nil when none won.
func (g *commGate) settle(max time.Duration) net.Conn {
	const moment = 50 * time.Millisecond
	end := time.Now().Add(max)
	t := time.NewTicker(moment / 5)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case c := <-g.won:
			return c
		case <-t.C:
		}
		g.mu.Lock()
		busy := len(g.pending) > 0
		g.mu.Unlock()
		if time.Now().After(end) || (!busy && time.Since(start) >= moment) {
			select {
			case c := <-g.won:
				return c
			default:
				return nil
			}
		}
	}
}

// refused describes the connections refused so far ("" when none was).
func (g *commGate) refused() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rejected == 0 {
		return ""
	}
	return fmt.Sprintf("%d connection(s) without the runtime's secret, the last: %v; %s", g.rejected, g.lastWhy, errSDKTooOld)
}
