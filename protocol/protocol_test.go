package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestParseCodec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Codec
		wantErr bool
	}{
		{"msgpack", CodecMsgpack, false},
		{"json", CodecJSON, false},
		{"", CodecMsgpack, false},
		{"JSON", 0, true},
		{"protobuf", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseCodec(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseCodec(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && tt.in != "" && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   int
		msg  Message
	}{
		{"zero_values", 1, GetXCom{}},
		{"nil_map_index", 2, GetXCom{Key: "k", TaskID: "push"}},
		{"zero_map_index", 3, SetXCom{Key: "k", Value: int64(0), MapIndex: intPtr(0)}},
		{"scalar_value", 4, SetXCom{Key: "k", Value: "plain"}},
		{"nil_value", 5, SetXCom{Key: "k"}},
		{"list_value", 6, SetXCom{Key: "k", Value: []any{int64(1), "two", 3.5, nil, true, []any{}, map[string]any{}}}},
		{"big_id", 1 << 40, OKResponse{}},
		{"negative_numbers", 7, XComResult{Value: map[string]any{"a": int64(-1 << 40), "b": -2.5}}},
		{"unicode", 8, VariableResult{Key: "grüße", Value: "こんにちは <&> \"quoted\"\n"}},
		{"pointer_message", 9, &GetVariable{Key: "p"}},
	}
	for _, c := range codecs {
		for _, tt := range tests {
			t.Run(c.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				want := withType(t, tt.msg)
				if reflect.ValueOf(want).Kind() == reflect.Pointer {
					want = reflect.ValueOf(want).Elem().Interface().(Message)
				}
				body, err := c.EncodeRequest(tt.id, tt.msg)
				if err != nil {
					t.Fatal(err)
				}
				req, err := c.DecodeRequest(body)
				if err != nil {
					t.Fatal(err)
				}
				if req.ID != tt.id || !reflect.DeepEqual(req.Msg, want) {
					t.Errorf("request: got %d %#v, want %d %#v", req.ID, req.Msg, tt.id, want)
				}
				body, err = c.EncodeResponse(tt.id, tt.msg, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.DecodeResponse(body)
				if err != nil {
					t.Fatal(err)
				}
				if resp.ID != tt.id || !reflect.DeepEqual(resp.Msg, want) || resp.Err != nil {
					t.Errorf("response: got %d %#v %v, want %d %#v", resp.ID, resp.Msg, resp.Err, tt.id, want)
				}
			})
		}
	}
}

func TestEncodeSetsType(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		body, err := c.EncodeRequest(1, GetVariable{Type: "SomethingElse", Key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		req, err := c.DecodeRequest(body)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.Msg.(GetVariable).Type; got != TypeGetVariable {
			t.Errorf("%v: type %q, want %q", c, got, TypeGetVariable)
		}
		body, err = c.EncodeResponse(2, nil, &ErrorResponse{Error: "not_found"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.DecodeResponse(body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Msg != nil || resp.Err == nil || resp.Err.Type != TypeErrorResponse || resp.Err.Error != "not_found" {
			t.Errorf("%v: error response decoded as %#v", c, resp)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	t.Parallel()
	if _, err := CodecMsgpack.EncodeRequest(1, nil); err == nil {
		t.Error("EncodeRequest(nil) succeeded")
	}
	if _, err := CodecJSON.EncodeRequest(1, noType{}); err == nil {
		t.Error("EncodeRequest of a struct without Type succeeded")
	}
	if _, err := Codec(7).EncodeRequest(1, OKResponse{}); err == nil {
		t.Error("unknown codec encoded")
	}
}

type noType struct{ Key string }

func (noType) MessageType() string { return "NoType" }

// encodeBody encodes a JSON-like value as a body of codec c.
func encodeBody(t *testing.T, c Codec, v any) []byte {
	t.Helper()
	if c == CodecJSON {
		b, err := CodecJSON.encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeTolerance(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			// A response without its error element, with unknown fields.
			body := encodeBody(t, c, []any{3, map[string]any{"type": "VariableResult", "key": "k", "value": "v", "added_in_v2": map[string]any{"x": 1}}})
			resp, err := c.DecodeResponse(body)
			if err != nil {
				t.Fatal(err)
			}
			want := VariableResult{Type: TypeVariableResult, Key: "k", Value: "v"}
			if resp.ID != 3 || resp.Msg != want || resp.Err != nil {
				t.Errorf("got %#v, want %#v", resp, want)
			}
			// A request with a nil third element.
			body = encodeBody(t, c, []any{4, map[string]any{"type": "GetVariable", "key": "k"}, nil})
			req, err := c.DecodeRequest(body)
			if err != nil || req.Msg != (GetVariable{Type: TypeGetVariable, Key: "k"}) {
				t.Errorf("request with nil error element: %#v, %v", req, err)
			}
			// An error without a type; nil fields.
			body = encodeBody(t, c, []any{5, nil, map[string]any{"error": "not_found", "detail": nil}})
			resp, err = c.DecodeResponse(body)
			if err != nil || resp.Err == nil || !reflect.DeepEqual(*resp.Err, ErrorResponse{Type: TypeErrorResponse, Error: "not_found"}) {
				t.Errorf("untyped error: %#v, %v", resp, err)
			}
			// any values are JSON-like.
			body = encodeBody(t, c, []any{6, map[string]any{"type": "XComResult", "key": "k",
				"value": map[string]any{"n": 42, "f": 1.5, "l": []any{map[string]any{"deep": uint8(7)}}}}})
			resp, err = c.DecodeResponse(body)
			if err != nil {
				t.Fatal(err)
			}
			wantValue := map[string]any{"n": int64(42), "f": 1.5, "l": []any{map[string]any{"deep": int64(7)}}}
			if got := resp.Msg.(XComResult).Value; !reflect.DeepEqual(got, wantValue) {
				t.Errorf("value %#v, want %#v", got, wantValue)
			}
		})
	}
}

func TestDecodeMsgpackSpecifics(t *testing.T) {
	t.Parallel()
	// A msgpack timestamp becomes an RFC 3339 string; bin becomes []byte;
	// a struct encoded by another SDK with int-keyed maps is refused.
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	ts := mustTime(t, "2026-11-22T08:15:30.5Z")
	if err := enc.Encode([]any{0, map[string]any{"type": "StartupDetails", "start_date": ts, "next_kwargs": map[string]any{"raw": []byte{1, 2}}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := CodecMsgpack.DecodeResponse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	sd := resp.Msg.(StartupDetails)
	if sd.StartDate != "2026-11-22T08:15:30.5Z" || !bytes.Equal(sd.NextKwargs["raw"].([]byte), []byte{1, 2}) {
		t.Errorf("got %#v", sd)
	}
	b, _ := msgpack.Marshal([]any{1, map[any]any{"type": "XComResult", "value": map[any]any{1: "x"}}})
	if _, err := CodecMsgpack.DecodeResponse(b); !errors.Is(err, ErrMalformedFrame) {
		t.Errorf("int map key: %v, want ErrMalformedFrame", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	okMsg := map[string]any{"type": "GetVariable", "key": "k"}
	tests := []struct {
		name string
		v    any
		want error
	}{
		{"not_an_array", okMsg, ErrMalformedFrame},
		{"empty_array", []any{}, ErrMalformedFrame},
		{"one_element", []any{1}, ErrMalformedFrame},
		{"four_elements", []any{1, okMsg, nil, nil}, ErrMalformedFrame},
		{"string_id", []any{"1", okMsg}, ErrMalformedFrame},
		{"float_id", []any{1.5, okMsg}, ErrMalformedFrame},
		{"nil_id", []any{nil, okMsg}, ErrMalformedFrame},
		{"msg_not_map", []any{1, []any{"GetVariable"}}, ErrMalformedFrame},
		{"msg_string", []any{1, "GetVariable"}, ErrMalformedFrame},
		{"missing_type", []any{1, map[string]any{"key": "k"}}, ErrMalformedFrame},
		{"type_not_string", []any{1, map[string]any{"type": 3}}, ErrMalformedFrame},
		{"unknown_type", []any{1, map[string]any{"type": "LaunchRockets"}}, ErrUnknownMessageType},
		{"wrong_field_type", []any{1, map[string]any{"type": "GetVariable", "key": 7}}, ErrMalformedFrame},
		{"wrong_int_type", []any{1, map[string]any{"type": "GetXCom", "map_index": "2"}}, ErrMalformedFrame},
		{"float_for_int", []any{1, map[string]any{"type": "GetXCom", "map_index": 2.5}}, ErrMalformedFrame},
		{"wrong_map_type", []any{1, map[string]any{"type": "DeferTask", "trigger_kwargs": []any{1}}}, ErrMalformedFrame},
		{"wrong_nested", []any{1, map[string]any{"type": "StartupDetails", "ti": map[string]any{"try_number": "x"}}}, ErrMalformedFrame},
		{"nested_not_map", []any{1, map[string]any{"type": "StartupDetails", "ti": "x"}}, ErrMalformedFrame},
	}
	for _, c := range codecs {
		for _, tt := range tests {
			t.Run(c.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				body := encodeBody(t, c, tt.v)
				if _, err := c.DecodeRequest(body); !errors.Is(err, tt.want) {
					t.Errorf("DecodeRequest: %v, want %v", err, tt.want)
				}
				if _, err := c.DecodeResponse(body); !errors.Is(err, tt.want) {
					t.Errorf("DecodeResponse: %v, want %v", err, tt.want)
				}
			})
		}
	}
	// Shapes valid for one direction only.
	for _, c := range codecs {
		if _, err := c.DecodeRequest(encodeBody(t, c, []any{1, nil})); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("%v: request with nil msg: %v", c, err)
		}
		if _, err := c.DecodeRequest(encodeBody(t, c, []any{1, okMsg, map[string]any{"error": "x"}})); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("%v: request with an error: %v", c, err)
		}
		if _, err := c.DecodeResponse(encodeBody(t, c, []any{1, nil, "boom"})); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("%v: response with a string error: %v", c, err)
		}
		if _, err := c.DecodeResponse(encodeBody(t, c, []any{1, nil, map[string]any{"type": "OKResponse"}})); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("%v: response with an OKResponse error: %v", c, err)
		}
		// The id survives a bad msg, so the receiver can answer.
		req, err := c.DecodeRequest(encodeBody(t, c, []any{42, map[string]any{"type": "LaunchRockets"}}))
		if !errors.Is(err, ErrUnknownMessageType) || req.ID != 42 {
			t.Errorf("%v: unknown type: id %d, %v", c, req.ID, err)
		}
	}
}

func TestDecodeGarbage(t *testing.T) {
	t.Parallel()
	valid := map[Codec][]byte{}
	for _, c := range codecs {
		b, err := c.EncodeRequest(1, GetVariable{Key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		valid[c] = b
	}
	tests := []struct {
		name  string
		codec Codec
		body  []byte
	}{
		{"empty", CodecMsgpack, nil},
		{"empty", CodecJSON, nil},
		{"invalid_code", CodecMsgpack, []byte{0xc1}},
		{"five_c1", CodecMsgpack, []byte{0xc1, 0xc1, 0xc1, 0xc1, 0xc1}},
		{"truncated", CodecMsgpack, valid[CodecMsgpack][:len(valid[CodecMsgpack])-1]},
		{"truncated", CodecJSON, valid[CodecJSON][:len(valid[CodecJSON])-1]},
		{"trailing", CodecMsgpack, append(bytes.Clone(valid[CodecMsgpack]), 0x00)},
		{"trailing", CodecJSON, append(bytes.Clone(valid[CodecJSON]), []byte(" {}")...)},
		{"json_as_msgpack", CodecMsgpack, valid[CodecJSON]},
		{"msgpack_as_json", CodecJSON, valid[CodecMsgpack]},
		{"huge_array_header", CodecMsgpack, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge_map_header", CodecMsgpack, []byte{0x92, 0x01, 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"huge_str_header", CodecMsgpack, []byte{0x92, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff}},
		{"unknown_ext", CodecMsgpack, []byte{0x92, 0x01, 0xd4, 0x05, 0x00}},
		{"bad_timestamp", CodecMsgpack, []byte{0x92, 0x01, 0xd5, 0xff, 0x00, 0x00}},
		{"deep_nesting", CodecMsgpack, append(bytes.Repeat([]byte{0x91}, 100000), 0xc0)},
		{"deep_nesting", CodecJSON, []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000))},
		{"big_number", CodecJSON, []byte(`[1,{"type":"XComResult","value":1e400}]`)},
		{"not_json", CodecJSON, []byte(`[1,{"type":"GetVariable",}]`)},
	}
	for _, tt := range tests {
		t.Run(tt.codec.String()+"/"+tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.codec.DecodeRequest(tt.body); !errors.Is(err, ErrMalformedFrame) {
				t.Errorf("DecodeRequest: %v, want ErrMalformedFrame", err)
			}
			if _, err := tt.codec.DecodeResponse(tt.body); !errors.Is(err, ErrMalformedFrame) {
				t.Errorf("DecodeResponse: %v, want ErrMalformedFrame", err)
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	t.Parallel()
	whole := frame([]byte("hello"))
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    string
		wantErr error
	}{
		{"whole", whole, 0, "hello", nil},
		{"empty_body", frame(nil), 0, "", nil},
		{"clean_eof", nil, 0, "", io.EOF},
		{"partial_header", whole[:2], 0, "", io.ErrUnexpectedEOF},
		{"header_only", whole[:4], 0, "", io.ErrUnexpectedEOF},
		{"truncated_body", whole[:7], 0, "", io.ErrUnexpectedEOF},
		{"at_limit", whole, 5, "hello", nil},
		{"over_limit", whole, 4, "", ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadFrame(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.wantErr) || string(got) != tt.want {
				t.Errorf("ReadFrame = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadFrameTooLargeDoesNotAllocate(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<30) // 1 GiB, then almost nothing
	in := append(hdr[:], "tiny"...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(in), 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("ReadFrame: %v, want ErrFrameTooLarge", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
		t.Errorf("ReadFrame allocated %d bytes for a refused frame", d)
	}
	c := NewConn(&rw{Reader: bytes.NewReader(in)}, CodecMsgpack, 0)
	if _, err := c.ReadRequest(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("Conn.ReadRequest: %v, want ErrFrameTooLarge", err)
	}
}

type rw struct {
	io.Reader
	io.Writer
}

func TestWriteFrameTooLargeForConn(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c := NewConn(&rw{Reader: &buf, Writer: &buf}, CodecJSON, 16)
	if err := c.WriteRequest(1, GetVariable{Key: strings.Repeat("k", 32)}); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("WriteRequest: %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes", buf.Len())
	}
}

// TestConnConcurrent has many goroutines write requests on one Conn while
// the other end reads them: frames never interleave.
func TestConnConcurrent(t *testing.T) {
	t.Parallel()
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			task, worker := NewConn(a, codec, 0), NewConn(b, codec, 0)
			const writers, each = 8, 50
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						id := w*each + i + 1
						if err := task.WriteRequest(id, SetXCom{Key: "k", Value: map[string]any{"id": id, "pad": strings.Repeat("x", id)}}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			// Answer on the other direction while requests arrive.
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range writers * each {
					resp, err := task.ReadResponse()
					if err != nil {
						t.Error(err)
						return
					}
					if _, ok := resp.Msg.(OKResponse); !ok {
						t.Errorf("response %#v", resp)
					}
				}
			}()
			seen := map[int]bool{}
			for range writers * each {
				req, err := worker.ReadRequest()
				if err != nil {
					t.Fatal(err)
				}
				m := req.Msg.(SetXCom)
				if m.Value.(map[string]any)["id"] != int64(req.ID) {
					t.Fatalf("request %d carries %v", req.ID, m.Value)
				}
				seen[req.ID] = true
				if err := worker.WriteResponse(req.ID, OKResponse{}, nil); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			<-done
			if len(seen) != writers*each {
				t.Errorf("saw %d distinct ids, want %d", len(seen), writers*each)
			}
		})
	}
}

// TestConnNamesAnAuthFrameForARequest: an auth frame where a request is
// due (once seen as "26 bytes after the body" from a warm runtime: the
// 27-byte auth frame with an empty secret, decoded as msgpack) is named
// as one, without its secret.
func TestConnNamesAnAuthFrameForARequest(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ secret, want string }{
		{"", "a 27-byte body: an auth frame with an empty secret"},
		{"s3cr3t", "a 33-byte body: an auth frame with a secret"},
	} {
		conn := NewConn(&rw{Reader: bytes.NewReader(AuthFrame(c.secret))}, CodecMsgpack, 0)
		_, err := conn.ReadRequest()
		if !errors.Is(err, ErrMalformedFrame) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("secret %q: %v, want ErrMalformedFrame naming %q", c.secret, err, c.want)
		}
		if c.secret != "" && strings.Contains(err.Error(), c.secret) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
	// Any other body is named by its length.
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte{0x01, 0x02}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConn(&rw{Reader: &buf}, CodecMsgpack, 0).ReadRequest(); err == nil || !strings.Contains(err.Error(), "(a 2-byte body)") {
		t.Errorf("2 bytes: %v", err)
	}
}
