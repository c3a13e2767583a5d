package protocol

import (
	"bytes"
	"os"
	"testing"
)

// seedGolden adds every golden frame of both codecs: whole frames when
// frames is true, else bodies with their codec.
func seedGolden(f *testing.F, frames bool) {
	for _, c := range codecs {
		for _, g := range goldens() {
			b, err := os.ReadFile(goldenPath(c, g.name))
			if err != nil {
				f.Fatal(err)
			}
			switch {
			case frames:
				f.Add(b)
			default:
				f.Add(b[4:], c == CodecJSON)
			}
		}
	}
}

func codecOf(json bool) Codec {
	if json {
		return CodecJSON
	}
	return CodecMsgpack
}

// FuzzDecodeRequest checks that DecodeRequest never panics and that what it
// accepts encodes again, to bytes that decode to the same encoding.
func FuzzDecodeRequest(f *testing.F) {
	seedGolden(f, false)
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		c := codecOf(json)
		req, err := c.DecodeRequest(body)
		if err != nil {
			return
		}
		b2, err := c.EncodeRequest(req.ID, req.Msg)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", req, err)
		}
		req2, err := c.DecodeRequest(b2)
		if err != nil {
			t.Fatalf("cannot decode own encoding %q: %v", b2, err)
		}
		b3, err := c.EncodeRequest(req2.ID, req2.Msg)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding not stable: %q then %q (%v)", b2, b3, err)
		}
	})
}

// FuzzDecodeResponse is FuzzDecodeRequest for responses.
func FuzzDecodeResponse(f *testing.F) {
	seedGolden(f, false)
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		c := codecOf(json)
		resp, err := c.DecodeResponse(body)
		if err != nil {
			return
		}
		b2, err := c.EncodeResponse(resp.ID, resp.Msg, resp.Err)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", resp, err)
		}
		resp2, err := c.DecodeResponse(b2)
		if err != nil {
			t.Fatalf("cannot decode own encoding %q: %v", b2, err)
		}
		b3, err := c.EncodeResponse(resp2.ID, resp2.Msg, resp2.Err)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding not stable: %q then %q (%v)", b2, b3, err)
		}
	})
}

// FuzzReadFrame checks that ReadFrame never panics, never returns more than
// the limit, and returns exactly the framed body.
func FuzzReadFrame(f *testing.F) {
	seedGolden(f, true)
	f.Add([]byte{0x40, 0, 0, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 16
		r := bytes.NewReader(in)
		for {
			body, err := ReadFrame(r, max)
			if err != nil {
				return
			}
			if len(body) > max {
				t.Fatalf("body of %d bytes over the limit", len(body))
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, body); err != nil {
				t.Fatal(err)
			}
			if got, err := ReadFrame(&buf, max); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("frame does not round-trip: %v", err)
			}
		}
	})
}
