package executor

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The tokens issue writes are the bytes golang-jwt signs for the same
// claims, and verify's fast path decides as golang-jwt does.
func TestTokenFastPathMatchesJWT(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 700_000_000)
	tk := tokens{key: []byte("0123456789abcdef0123456789abcdef"), now: func() time.Time { return now }}
	for _, tc := range []struct {
		aud, ti, act string
		try          int
		ttl          time.Duration
	}{
		{audExecution, "ti-1", "", 1, 10 * time.Minute},
		{audWorkload, "ti-2", "ti-2.3", 3, 1500 * time.Millisecond},
		{audWorkload, `odd "id" <&> é` + "\x01", "act\\", 12, time.Hour},
	} {
		got, err := tk.issue(tc.aud, tc.ti, tc.try, tc.act, tc.ttl)
		if err != nil {
			t.Fatal(err)
		}
		c := claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Subject: tc.ti, Audience: jwt.ClaimStrings{tc.aud},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(tc.ttl))}, Try: tc.try, Activity: tc.act}
		want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(tk.key)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("issue(%q) =\n%s\nwant (golang-jwt)\n%s", tc.ti, got, want)
		}
		fast, err := tk.verifyFast(got, tc.aud)
		if err != nil {
			t.Fatalf("verifyFast: %v", err)
		}
		slow, err := tk.verifyJWT(got, tc.aud)
		if err != nil {
			t.Fatalf("verifyJWT: %v", err)
		}
		if fast.Subject != slow.Subject || fast.Try != slow.Try || fast.Activity != slow.Activity ||
			!fast.ExpiresAt.Equal(slow.ExpiresAt.Time) || !fast.NotBefore.Equal(slow.NotBefore.Time) {
			t.Errorf("verifyFast = %+v, golang-jwt = %+v", fast, slow)
		}
	}

	good, _ := tk.issue(audExecution, "ti-1", 1, "", time.Minute)
	other := tokens{key: []byte("another-key-another-key-another-k"), now: tk.now}
	forged, _ := other.issue(audExecution, "ti-1", 1, "", time.Minute)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": issuer, "sub": "ti-1", "aud": audExecution}).SignedString(tk.key)
	strAud, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": issuer, "sub": "ti-1", "aud": audExecution,
		"exp": now.Add(time.Minute).Unix()}).SignedString(tk.key)
	badIss, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "x", "sub": "ti-1", "aud": audExecution,
		"exp": now.Add(time.Minute).Unix()}).SignedString(tk.key)
	future, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": issuer, "sub": "ti-1", "aud": audExecution,
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Minute).Unix()}).SignedString(tk.key)
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims{"iss": issuer, "sub": "ti-1", "aud": audExecution,
		"exp": now.Add(time.Minute).Unix()}).SignedString(tk.key)
	later := tokens{key: tk.key, now: func() time.Time { return now.Add(time.Minute) }}
	for name, tc := range map[string]struct {
		tk      tokens
		raw     string
		aud, ti string
		want    error
	}{
		"good":         {tk, good, audExecution, "ti-1", nil},
		"string aud":   {tk, strAud, audExecution, "ti-1", nil},
		"foreign":      {tk, good, audExecution, "ti-2", ErrTokenForeign},
		"wrong aud":    {tk, good, audWorkload, "ti-1", ErrTokenInvalid},
		"forged":       {tk, forged, audExecution, "ti-1", ErrTokenInvalid},
		"expired":      {later, good, audExecution, "ti-1", ErrTokenInvalid},
		"no exp":       {tk, noExp, audExecution, "ti-1", ErrTokenInvalid},
		"bad issuer":   {tk, badIss, audExecution, "ti-1", ErrTokenInvalid},
		"not yet":      {tk, future, audExecution, "ti-1", ErrTokenInvalid},
		"HS384":        {tk, hs384, audExecution, "ti-1", ErrTokenInvalid},
		"truncated":    {tk, good[:len(good)-3], audExecution, "ti-1", ErrTokenInvalid},
		"extra part":   {tk, good + ".x", audExecution, "ti-1", ErrTokenInvalid},
		"two parts":    {tk, jwtHeader + ".e30", audExecution, "ti-1", ErrTokenInvalid},
		"garbage":      {tk, "not a token", audExecution, "ti-1", ErrTokenInvalid},
		"payload swap": {tk, jwtHeader + "." + b64.EncodeToString([]byte(`{"iss":"taskwire-executor"}`)) + good[len(good)-44:], audExecution, "", ErrTokenInvalid},
	} {
		_, err := tc.tk.verify(tc.raw, tc.aud, tc.ti)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: verify = %v, want %v", name, err, tc.want)
		}
	}
}

func BenchmarkTokens(b *testing.B) {
	tk := tokens{key: []byte("0123456789abcdef0123456789abcdef"), now: time.Now}
	b.Run("issue", func(b *testing.B) {
		for b.Loop() {
			_, _ = tk.issue(audExecution, "0194f2d6-8d5e-7c3a-9b1e-5f2a7d9c4e11", 1, "", time.Hour)
		}
	})
	raw, _ := tk.issue(audExecution, "0194f2d6-8d5e-7c3a-9b1e-5f2a7d9c4e11", 1, "", time.Hour)
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := tk.verify(raw, audExecution, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify-golang-jwt", func(b *testing.B) {
		for b.Loop() {
			if _, err := tk.verifyJWT(raw, audExecution); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("issue-golang-jwt", func(b *testing.B) {
		now := time.Now()
		for b.Loop() {
			_, _ = jwt.NewWithClaims(jwt.SigningMethodHS256, claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer,
				Subject: "0194f2d6-8d5e-7c3a-9b1e-5f2a7d9c4e11", Audience: jwt.ClaimStrings{audExecution},
				IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
				Try: 1}).SignedString(tk.key)
		}
	})
}

// FuzzVerifyToken: any token is refused or accepted without a panic, and
// the fast path accepts nothing golang-jwt refuses, be it a mangled token
// or claims of any shape signed with the right key.
func FuzzVerifyToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	tk := tokens{key: []byte("0123456789abcdef0123456789abcdef"), now: func() time.Time { return now }}
	good, _ := tk.issue(audExecution, "ti-1", 1, "act", time.Minute)
	f.Add(good, "")
	f.Add(jwtHeader+".e30.", `{"iss":"taskwire-executor","sub":"ti-1","aud":"taskwire:execution","exp":1800000060.5}`)
	f.Add("", `{"iss":"taskwire-executor","aud":["x","taskwire:execution"],"exp":"1800000060","nbf":null}`)
	f.Add("", `{"iss":"taskwire-executor","aud":null,"exp":1e10,"try":"1"}`)
	f.Fuzz(func(t *testing.T, raw, claims string) {
		if claims != "" {
			signed := jwtHeader + "." + b64.EncodeToString([]byte(claims))
			h, done := tk.mac()
			h.Write([]byte(signed))
			raw = signed + "." + b64.EncodeToString(h.Sum(nil))
			done()
		}
		fast, err := tk.verifyFast(raw, audExecution)
		if err != nil {
			return
		}
		slow, err := tk.verifyJWT(raw, audExecution)
		if err != nil {
			t.Fatalf("fast path accepted %q, golang-jwt refuses it: %v", raw, err)
		}
		if fast.Subject != slow.Subject || fast.Try != slow.Try || fast.Activity != slow.Activity {
			t.Fatalf("fast %+v, golang-jwt %+v", fast, slow)
		}
	})
}
