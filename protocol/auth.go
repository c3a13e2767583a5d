package protocol

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// EnvCommSecret is the environment variable that gives a runtime process
// the secret it presents first on every comm and logs connection (see
// AuthFrame and LogStreamHeader). The worker makes one per cold try and one
// per warm process (NewSecret) and passes it only in the environment, which
// only the same user can read, never in argv, which every user can read.
const EnvCommSecret = "TASKWIRE_COMM_SECRET"

// TypeAuth is the type of the auth frame's body.
const TypeAuth = "Auth"

// SecretBytes is the number of random bytes of a secret (256 bits); it is
// written as twice as many lowercase hex digits.
const SecretBytes = 32

// MaxAuthFrame bounds the body of an auth frame: a longer frame header is
// refused before anything is read or allocated.
const MaxAuthFrame = 256

// ErrAuth is returned by ReadAuth for a connection that did not present the
// right secret.
var ErrAuth = errors.New("comm auth")

// NewSecret returns a fresh secret from crypto/rand: SecretBytes random
// bytes in lowercase hex.
func NewSecret() (string, error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("comm secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Auth is the body of the first frame a runtime sends on every comm
// connection, before the worker sends anything: JSON whatever the codec
// (so that the worker reads it before it trusts the peer, and a runtime
// writes it before it has a codec), exactly
//
//	{"type":"Auth","secret":"<EnvCommSecret's value>"}
//
// in a frame like any other (4-byte big-endian length, then the body; golden
// vector testdata/auth_frame.bin). The worker compares the secret in
// constant time and closes a connection that does not present it within a
// short deadline, without writing a byte to it.
type Auth struct {
	Type   string `json:"type"`
	Secret string `json:"secret"`
}

// AuthFrame returns the whole auth frame (length header included) that
// presents secret.
func AuthFrame(secret string) []byte {
	body, _ := json.Marshal(Auth{Type: TypeAuth, Secret: secret})
	frame := make([]byte, 4, 4+len(body))
	frame[0], frame[1], frame[2], frame[3] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	return append(frame, body...)
}

// ParseAuth decodes an auth frame's body.
func ParseAuth(body []byte) (Auth, error) {
	var a Auth
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("%w: first frame is not an auth frame: %v", ErrAuth, err)
	}
	if a.Type != TypeAuth {
		return a, fmt.Errorf("%w: first frame has type %q, want %q", ErrAuth, a.Type, TypeAuth)
	}
	return a, nil
}

// ReadAuth reads the auth frame from r and checks that it presents want
// (in constant time). Any failure wraps ErrAuth, except the reader's own
// errors (io.EOF, timeouts), which are returned as they are.
func ReadAuth(r io.Reader, want string) error {
	body, err := ReadFrame(r, MaxAuthFrame)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			return fmt.Errorf("%w: %v", ErrAuth, err)
		}
		return err
	}
	a, err := ParseAuth(body)
	if err != nil {
		return err
	}
	if !SecretEqual(a.Secret, want) {
		return fmt.Errorf("%w: wrong secret", ErrAuth)
	}
	return nil
}

// SecretEqual compares a presented secret with the expected one in
// constant time; an empty expected secret matches nothing.
func SecretEqual(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
