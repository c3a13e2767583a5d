package protocol

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// goldenSecret is the secret of the golden vectors (testdata/auth_frame.bin,
// testdata/log_stream_*), which every SDK's tests read.
const goldenSecret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %q, golden %q", name, got, want)
	}
}

func TestAuthFrameGolden(t *testing.T) {
	f := AuthFrame(goldenSecret)
	checkGolden(t, "auth_frame.bin", f)
	if err := ReadAuth(bytes.NewReader(f), goldenSecret); err != nil {
		t.Errorf("ReadAuth(golden) = %v", err)
	}
	body, err := ReadFrame(bytes.NewReader(f), 0)
	if err != nil || string(body) != `{"type":"Auth","secret":"`+goldenSecret+`"}` {
		t.Errorf("body %q, %v", body, err)
	}
	for name, in := range map[string][]byte{
		"wrong secret":  AuthFrame(goldenSecret[:63] + "0"),
		"empty secret":  AuthFrame(""),
		"other type":    frameOf(`{"type":"GetVariable","secret":"` + goldenSecret + `"}`),
		"not json":      frameOf("\x92\x00\x80"),
		"huge header":   {0x7f, 0xff, 0xff, 0xff},
		"a request":     frameOf(`[1,{"type":"SucceedTask"}]`),
		"prefix secret": AuthFrame(goldenSecret[:32]),
	} {
		if err := ReadAuth(bytes.NewReader(in), goldenSecret); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: ReadAuth = %v, want ErrAuth", name, err)
		}
	}
	if err := ReadAuth(bytes.NewReader(nil), goldenSecret); !errors.Is(err, io.EOF) {
		t.Errorf("empty stream: %v, want EOF", err)
	}
	if err := ReadAuth(bytes.NewReader(AuthFrame("")), ""); !errors.Is(err, ErrAuth) {
		t.Errorf("empty expected secret matched: %v", err)
	}
}

func TestLogStreamColdGolden(t *testing.T) {
	h := LogStreamHeader{Secret: goldenSecret}
	line := h.MarshalLine()
	checkGolden(t, "log_stream_cold.jsonl", line)
	back, err := ParseLogStreamHeader(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil || !back.Cold() || back.Secret != goldenSecret {
		t.Errorf("parse = %+v, %v", back, err)
	}
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	if len(a) != 2*SecretBytes || a == b {
		t.Errorf("secrets %q %q", a, b)
	}
	if len(AuthFrame(a))-4 > MaxAuthFrame {
		t.Errorf("auth frame of a secret is above MaxAuthFrame")
	}
}

func frameOf(body string) []byte {
	var b bytes.Buffer
	_ = WriteFrame(&b, []byte(body))
	return b.Bytes()
}

// FuzzReadAuth: any input is refused or accepted without a panic, and only
// the frame that carries the secret is accepted.
func FuzzReadAuth(f *testing.F) {
	f.Add(AuthFrame(goldenSecret))
	f.Add(AuthFrame("x"))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		err := ReadAuth(bytes.NewReader(in), goldenSecret)
		if err != nil {
			return
		}
		body, _ := ReadFrame(bytes.NewReader(in), MaxAuthFrame)
		a, perr := ParseAuth(body)
		if perr != nil || a.Secret != goldenSecret {
			t.Fatalf("accepted %q", in)
		}
	})
}

// FuzzParseLogStreamHeader: any line is refused or parsed without a panic;
// a parsed header has a secret and one valid form.
func FuzzParseLogStreamHeader(f *testing.F) {
	f.Add(LogStreamHeader{Secret: goldenSecret}.MarshalLine())
	f.Add(LogStreamHeader{Mux: true, Secret: goldenSecret}.MarshalLine())
	f.Add(LogStreamHeader{TIID: "x", TryNumber: 1, Secret: goldenSecret}.MarshalLine())
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := ParseLogStreamHeader(line)
		if err != nil {
			return
		}
		if h.Secret == "" || (h.Mux && h.TIID != "") || (!h.Cold() && !h.Mux && h.TryNumber < 1) {
			t.Fatalf("%q parsed as %+v", line, h)
		}
	})
}
