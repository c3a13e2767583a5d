package executor

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token audiences: a workload token is good only for …/run; an execution
// token for everything else a task try does.
const (
	audWorkload  = "taskwire:workload"
	audExecution = "taskwire:execution"
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

func (t tokens) issue(aud, tiID string, try int, activityID string, ttl time.Duration) (string, error) {
	now := t.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   tiID,
			Audience:  jwt.ClaimStrings{aud},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Try:      try,
		Activity: activityID,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// verify checks signature, expiry and audience, and that the token acts for tiID.
func (t tokens) verify(raw, aud, tiID string) (*claims, error) {
	var c claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(aud), jwt.WithIssuer(issuer), jwt.WithTimeFunc(t.now),
		jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if tiID != "" && c.Subject != tiID {
		return nil, ErrTokenForeign
	}
	return &c, nil
}
