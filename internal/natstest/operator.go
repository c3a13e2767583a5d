package natstest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Operator is a NATS operator with one JetStream-enabled account, made at
// test time, for a server in JWT (decentralised) authentication mode:
// clients connect with the creds files (user JWT + nkey seed) of
// Operator.Creds.
type Operator struct {
	claims  *jwt.OperatorClaims
	account nkeys.KeyPair
	accPub  string
	sysPub  string
	jwts    map[string]string // account public key → JWT
	dir     string
}

// NewOperator makes an operator, its system account and one account with
// unlimited JetStream.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	check(t, err)
	opub, err := okp.PublicKey()
	check(t, err)
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "taskwire-test"
	ojwt, err := oc.Encode(okp)
	check(t, err)
	claims, err := jwt.DecodeOperatorClaims(ojwt)
	check(t, err)

	o := &Operator{claims: claims, jwts: map[string]string{}, dir: t.TempDir()}
	account := func(name string, js bool) (nkeys.KeyPair, string) {
		kp, err := nkeys.CreateAccount()
		check(t, err)
		pub, err := kp.PublicKey()
		check(t, err)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		j, err := ac.Encode(okp)
		check(t, err)
		o.jwts[pub] = j
		return kp, pub
	}
	_, o.sysPub = account("SYS", false)
	o.account, o.accPub = account("TASKWIRE", true)
	return o
}

// Configure puts the server in JWT mode trusting the operator, its accounts
// resolved from memory.
func (o *Operator) Configure(opts *server.Options) {
	r := &server.MemAccResolver{}
	for pub, j := range o.jwts {
		_ = r.Store(pub, j)
	}
	opts.TrustedOperators = []*jwt.OperatorClaims{o.claims}
	opts.SystemAccount = o.sysPub
	opts.AccountResolver = r
}

// Creds writes the creds file of a new user of the account, with perms
// (nil: all permissions), and returns its path.
func (o *Operator) Creds(t testing.TB, name string, perms *jwt.Permissions) string {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	check(t, err)
	upub, err := ukp.PublicKey()
	check(t, err)
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	if perms != nil {
		uc.Permissions = *perms
	}
	ujwt, err := uc.Encode(o.account)
	check(t, err)
	seed, err := ukp.Seed()
	check(t, err)
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	check(t, err)
	path := filepath.Join(o.dir, name+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatalf("natstest: write creds: %v", err)
	}
	return path
}

// check fails the test on an error of the key and JWT libraries.
func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("natstest: operator: %v", err)
	}
}
