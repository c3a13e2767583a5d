package executor

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token audiences: a workload token is good only for …/run; an execution
// token for everything else a task try does; a trigger token (of a
// trigger the Python trigger runtime runs) for reading connections,
// variables and the XComs of its DAG run while its task waits deferred on
// that trigger.
const (
	audWorkload  = "taskwire:workload"
	audExecution = "taskwire:execution"
	audTrigger   = "taskwire:trigger"
	issuer       = "taskwire-executor"
)

// Token errors, mapped to 401 (bad/expired/wrong kind) and 403 (foreign).
var (
	ErrTokenInvalid = errors.New("invalid token")
	ErrTokenForeign = errors.New("token is for another task instance")
)

type claims struct {
	jwt.RegisteredClaims
	Try      int    `json:"try"`
	Activity string `json:"act,omitempty"`
}

type tokens struct {
	key []byte
	now func() time.Time
}

// Tokens are HS256 JWTs. Every task try costs two signatures and two or
// more verifications, so both are written out here (the header is a
// constant, the claims a fixed shape) rather than through golang-jwt's
// reflection and maps: the same bytes as jwt.NewWithClaims(HS256, claims)
// would sign (TestTokenFastPathMatchesJWT). A token whose header is not
// the one issued here is verified by golang-jwt.

// jwtHeader is the base64url of {"alg":"HS256","typ":"JWT"}, the header
// golang-jwt writes for HS256.
const jwtHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

var b64 = base64.RawURLEncoding

// macs pools HMAC-SHA256 states by key (one key per executor in practice).
var macs sync.Map // string(key) → *sync.Pool of hash.Hash

func (t tokens) mac() (hash.Hash, func()) {
	p, ok := macs.Load(string(t.key))
	if !ok {
		key := bytes.Clone(t.key)
		p, _ = macs.LoadOrStore(string(key), &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	pool := p.(*sync.Pool)
	h := pool.Get().(hash.Hash)
	h.Reset()
	return h, func() { pool.Put(h) }
}

func (t tokens) issue(aud, tiID string, try int, activityID string, ttl time.Duration) (string, error) {
	at := t.now()
	now := at.Unix()
	p := make([]byte, 0, 192)
	p = append(p, `{"iss":"`+issuer+`","sub":`...)
	p = appendJSONString(p, tiID)
	p = append(p, `,"aud":[`...)
	p = appendJSONString(p, aud)
	p = append(p, `],"exp":`...)
	p = strconv.AppendInt(p, at.Add(ttl).Unix(), 10)
	p = append(p, `,"nbf":`...)
	p = strconv.AppendInt(p, at.Add(-5*time.Second).Unix(), 10)
	p = append(p, `,"iat":`...)
	p = strconv.AppendInt(p, now, 10)
	p = append(p, `,"try":`...)
	p = strconv.AppendInt(p, int64(try), 10)
	if activityID != "" {
		p = append(p, `,"act":`...)
		p = appendJSONString(p, activityID)
	}
	p = append(p, '}')

	out := make([]byte, 0, len(jwtHeader)+1+b64.EncodedLen(len(p))+1+b64.EncodedLen(sha256.Size))
	out = append(out, jwtHeader+"."...)
	out = b64.AppendEncode(out, p)
	h, done := t.mac()
	h.Write(out)
	var sum [sha256.Size]byte
	sig := h.Sum(sum[:0])
	done()
	out = append(out, '.')
	out = b64.AppendEncode(out, sig)
	return string(out), nil
}

// appendJSONString appends s as a JSON string, as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// fastClaims is the claims of a token issued here, as decoded by verify.
type fastClaims struct {
	Iss      string           `json:"iss"`
	Sub      string           `json:"sub"`
	Aud      jwt.ClaimStrings `json:"aud"`
	Exp      json.Number      `json:"exp"`
	Nbf      json.Number      `json:"nbf"`
	Try      int              `json:"try"`
	Activity string           `json:"act"`
}

// verify checks signature, expiry and audience, and that the token acts for tiID.
func (t tokens) verify(raw, aud, tiID string) (*claims, error) {
	c, err := t.verifyFast(raw, aud)
	if errors.Is(err, errNotFast) {
		c, err = t.verifyJWT(raw, aud)
	}
	if err != nil {
		return nil, err
	}
	if tiID != "" && c.Subject != tiID {
		return nil, ErrTokenForeign
	}
	return c, nil
}

// errNotFast sends a token whose header is not the one issued here to
// golang-jwt.
var errNotFast = errors.New("not a token of this executor's shape")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTokenInvalid, fmt.Sprintf(format, args...))
}

// verifyFast verifies a token with the header issue writes: the
// signature first (constant time), then the claims golang-jwt would
// check with verifyJWT's options.
func (t tokens) verifyFast(raw, aud string) (*claims, error) {
	rest, ok := strings.CutPrefix(raw, jwtHeader+".")
	if !ok {
		return nil, errNotFast
	}
	dot := strings.IndexByte(rest, '.')
	if dot < 0 || strings.IndexByte(rest[dot+1:], '.') >= 0 {
		return nil, invalid("token is malformed: token contains an invalid number of segments")
	}
	signed, sigB64 := raw[:len(jwtHeader)+1+dot], rest[dot+1:]
	var sigBuf [sha256.Size + 8]byte
	if b64.DecodedLen(len(sigB64)) != sha256.Size {
		return nil, invalid("token signature is invalid: signature is invalid")
	}
	n, err := b64.Decode(sigBuf[:], []byte(sigB64))
	if err != nil || n != sha256.Size {
		return nil, invalid("token signature is invalid: signature is invalid")
	}
	h, done := t.mac()
	h.Write([]byte(signed))
	var sum [sha256.Size]byte
	good := hmac.Equal(h.Sum(sum[:0]), sigBuf[:n])
	done()
	if !good {
		return nil, invalid("token signature is invalid: signature is invalid")
	}
	payload, err := b64.DecodeString(rest[:dot])
	if err != nil {
		return nil, invalid("token is malformed: could not base64 decode claim")
	}
	var f fastClaims
	if err := json.Unmarshal(payload, &f); err != nil {
		return nil, invalid("token is malformed: could not JSON decode claim")
	}
	date := func(n json.Number, name string) (*jwt.NumericDate, error) {
		if n == "" {
			return nil, nil
		}
		if i, err := n.Int64(); err == nil {
			return &jwt.NumericDate{Time: time.Unix(i, 0)}, nil
		}
		v, err := n.Float64()
		if err != nil {
			return nil, invalid("token is malformed: %s is not a number", name)
		}
		return &jwt.NumericDate{Time: time.Unix(0, int64(v*float64(time.Second)))}, nil
	}
	c := &claims{Try: f.Try, Activity: f.Activity}
	c.Issuer, c.Subject, c.Audience = f.Iss, f.Sub, f.Aud
	if c.ExpiresAt, err = date(f.Exp, "exp"); err != nil {
		return nil, err
	}
	if c.NotBefore, err = date(f.Nbf, "nbf"); err != nil {
		return nil, err
	}
	now := t.now()
	switch {
	case c.ExpiresAt == nil:
		return nil, invalid("token is missing required claim: exp claim is required")
	case !now.Before(c.ExpiresAt.Time):
		return nil, invalid("token has invalid claims: token is expired")
	case c.NotBefore != nil && now.Before(c.NotBefore.Time):
		return nil, invalid("token has invalid claims: token is not valid yet")
	case c.Issuer != issuer:
		return nil, invalid("token has invalid claims: token has invalid issuer")
	}
	for _, a := range c.Audience {
		if a == aud {
			return c, nil
		}
	}
	return nil, invalid("token has invalid claims: token has invalid audience")
}

// verifyJWT verifies any HS256 token through golang-jwt.
func (t tokens) verifyJWT(raw, aud string) (*claims, error) {
	var c claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(aud), jwt.WithIssuer(issuer), jwt.WithTimeFunc(t.now),
		jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	return &c, nil
}
