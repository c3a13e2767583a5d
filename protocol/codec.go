package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec is the encoding of frame bodies on one connection.
type Codec int

const (
	// CodecMsgpack encodes bodies as msgpack. It is the zero value and the
	// default, as in Airflow.
	CodecMsgpack Codec = iota
	// CodecJSON encodes bodies as JSON, for runtimes without msgpack.
	CodecJSON
)

// String returns the codec's name as ParseCodec accepts it: "msgpack" or "json".
func (c Codec) String() string {
	switch c {
	case CodecMsgpack:
		return "msgpack"
	case CodecJSON:
		return "json"
	}
	return "Codec(" + strconv.Itoa(int(c)) + ")"
}

// ParseCodec parses a codec name: "msgpack" or "json". The empty string
// means the default, msgpack.
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "msgpack", "":
		return CodecMsgpack, nil
	case "json":
		return CodecJSON, nil
	}
	return 0, fmt.Errorf("unknown codec %q: want msgpack or json", s)
}

var (
	// ErrFrameTooLarge is returned for a frame longer than the maximum.
	ErrFrameTooLarge = errors.New("protocol: frame too large")
	// ErrMalformedFrame is wrapped by every error about a body that cannot be
	// decoded: bad encoding, wrong shape, wrong field types.
	ErrMalformedFrame = errors.New("protocol: malformed frame")
	// ErrUnknownMessageType is wrapped by decoding errors about a msg whose
	// type field names no message of this package.
	ErrUnknownMessageType = errors.New("protocol: unknown message type")
)

// Request is a decoded request body: [id, msg].
type Request struct {
	ID  int
	Msg Message
}

// Response is a decoded response body: [id, msg, error]. Msg is nil when the
// body carried nil; Err is nil when the body carried no error.
type Response struct {
	ID  int
	Msg Message
	Err *ErrorResponse
}

// messageTypes maps each type name to its struct.
var messageTypes = map[string]reflect.Type{
	TypeStartupDetails:   reflect.TypeFor[StartupDetails](),
	TypeConnectionResult: reflect.TypeFor[ConnectionResult](),
	TypeVariableResult:   reflect.TypeFor[VariableResult](),
	TypeXComResult:       reflect.TypeFor[XComResult](),
	TypeOKResponse:       reflect.TypeFor[OKResponse](),
	TypeErrorResponse:    reflect.TypeFor[ErrorResponse](),
	TypeGetConnection:    reflect.TypeFor[GetConnection](),
	TypeGetVariable:      reflect.TypeFor[GetVariable](),
	TypePutVariable:      reflect.TypeFor[PutVariable](),
	TypeGetXCom:          reflect.TypeFor[GetXCom](),
	TypeSetXCom:          reflect.TypeFor[SetXCom](),
	TypeDeleteXCom:       reflect.TypeFor[DeleteXCom](),
	TypeDeferTask:        reflect.TypeFor[DeferTask](),
	TypeRetryTask:        reflect.TypeFor[RetryTask](),
	TypeSucceedTask:      reflect.TypeFor[SucceedTask](),
	TypeTaskState:        reflect.TypeFor[TaskState](),
	TypeMaskSecret:       reflect.TypeFor[MaskSecret](),
}

// EncodeRequest encodes the request body [id, msg]. The type field is set
// from msg.MessageType(), whatever msg's Type field holds.
func (c Codec) EncodeRequest(id int, msg Message) ([]byte, error) {
	m, err := typed(msg)
	if err != nil {
		return nil, fmt.Errorf("encode request %d: %w", id, err)
	}
	if m == nil {
		return nil, fmt.Errorf("encode request %d: nil message", id)
	}
	b, err := c.encode([]any{id, m})
	if err != nil {
		return nil, fmt.Errorf("encode request %d (%s): %w", id, msg.MessageType(), err)
	}
	return b, nil
}

// EncodeResponse encodes the response body [id, msg, error]. msg and errResp
// may be nil; they encode as nil. The type fields are set from the messages'
// types.
func (c Codec) EncodeResponse(id int, msg Message, errResp *ErrorResponse) ([]byte, error) {
	m, err := typed(msg)
	if err != nil {
		return nil, fmt.Errorf("encode response %d: %w", id, err)
	}
	var e any
	if errResp != nil {
		er := *errResp
		er.Type = TypeErrorResponse
		e = er
	}
	b, err := c.encode([]any{id, m, e})
	if err != nil {
		return nil, fmt.Errorf("encode response %d: %w", id, err)
	}
	return b, nil
}

// typed returns a copy of msg with its Type field set to msg.MessageType(),
// or nil for a nil msg.
func typed(msg Message) (any, error) {
	if msg == nil {
		return nil, nil
	}
	v := reflect.ValueOf(msg)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("message %T is not a struct", msg)
	}
	cp := reflect.New(v.Type()).Elem()
	cp.Set(v)
	f := cp.FieldByName("Type")
	if !f.IsValid() || f.Kind() != reflect.String {
		return nil, fmt.Errorf("message %T has no Type string field", msg)
	}
	f.SetString(msg.MessageType())
	return cp.Interface(), nil
}

func (c Codec) encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	switch c {
	case CodecMsgpack:
		enc := msgpack.NewEncoder(&buf)
		enc.SetSortMapKeys(true)
		enc.UseCompactInts(true)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
	case CodecJSON:
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	default:
		return nil, fmt.Errorf("unknown codec %d", int(c))
	}
	return buf.Bytes(), nil
}

// DecodeRequest decodes a request body [id, msg] into the message's struct
// (a value, such as GetVariable). When the body is well formed but its msg
// is not (an unknown type, a field of the wrong type), the error comes with
// the request's ID filled in, so the receiver can still answer it.
func (c Codec) DecodeRequest(body []byte) (Request, error) {
	arr, err := c.decodeArray(body)
	if err != nil {
		return Request{}, fmt.Errorf("decode request: %w", err)
	}
	id, err := frameID(arr[0])
	if err != nil {
		return Request{}, fmt.Errorf("decode request: %w", err)
	}
	if len(arr) == 3 && arr[2] != nil {
		return Request{}, fmt.Errorf("decode request %d: %w: a request has no error element", id, ErrMalformedFrame)
	}
	if arr[1] == nil {
		return Request{ID: id}, fmt.Errorf("decode request %d: %w: msg is nil", id, ErrMalformedFrame)
	}
	msg, err := decodeMessage(arr[1])
	if err != nil {
		return Request{ID: id}, fmt.Errorf("decode request %d: %w", id, err)
	}
	return Request{ID: id, Msg: msg}, nil
}

// DecodeResponse decodes a response body [id, msg, error] (or [id, msg]).
// msg may be nil; error must be nil or an ErrorResponse map (its type field
// may be missing). As with DecodeRequest, an error about the msg or error
// element comes with the ID filled in.
func (c Codec) DecodeResponse(body []byte) (Response, error) {
	arr, err := c.decodeArray(body)
	if err != nil {
		return Response{}, fmt.Errorf("decode response: %w", err)
	}
	id, err := frameID(arr[0])
	if err != nil {
		return Response{}, fmt.Errorf("decode response: %w", err)
	}
	resp := Response{ID: id}
	if arr[1] != nil {
		if resp.Msg, err = decodeMessage(arr[1]); err != nil {
			return Response{ID: id}, fmt.Errorf("decode response %d: %w", id, err)
		}
	}
	if len(arr) == 3 && arr[2] != nil {
		m, ok := arr[2].(map[string]any)
		if !ok {
			return Response{ID: id}, fmt.Errorf("decode response %d: %w: error is %s, want a map or nil", id, ErrMalformedFrame, kindOf(arr[2]))
		}
		if t, ok := m["type"]; ok && t != nil && t != TypeErrorResponse {
			return Response{ID: id}, fmt.Errorf("decode response %d: %w: error has type %v, want %s", id, ErrMalformedFrame, t, TypeErrorResponse)
		}
		var er ErrorResponse
		if err := assign(reflect.ValueOf(&er).Elem(), m, "error"); err != nil {
			return Response{ID: id}, fmt.Errorf("decode response %d: %w", id, err)
		}
		er.Type = TypeErrorResponse
		resp.Err = &er
	}
	return resp, nil
}

// decodeArray decodes body into a JSON-like tree and checks it is an array of
// two or three elements.
func (c Codec) decodeArray(body []byte) ([]any, error) {
	var v any
	var err error
	switch c {
	case CodecMsgpack:
		v, err = decodeMsgpack(body)
	case CodecJSON:
		v, err = decodeJSON(body)
	default:
		return nil, fmt.Errorf("unknown codec %d", int(c))
	}
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: body is %s, want an array", ErrMalformedFrame, kindOf(v))
	}
	if len(arr) < 2 || len(arr) > 3 {
		return nil, fmt.Errorf("%w: body has %d elements, want 2 or 3", ErrMalformedFrame, len(arr))
	}
	return arr, nil
}

func frameID(v any) (int, error) {
	n, ok := v.(int64)
	if !ok || n < math.MinInt || n > math.MaxInt {
		return 0, fmt.Errorf("%w: id is %s, want an integer", ErrMalformedFrame, kindOf(v))
	}
	return int(n), nil
}

// decodeMessage turns a decoded msg map into its message struct.
func decodeMessage(v any) (Message, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: msg is %s, want a map", ErrMalformedFrame, kindOf(v))
	}
	tv, ok := m["type"]
	if !ok {
		return nil, fmt.Errorf("%w: msg has no type", ErrMalformedFrame)
	}
	name, ok := tv.(string)
	if !ok {
		return nil, fmt.Errorf("%w: msg type is %s, want a string", ErrMalformedFrame, kindOf(tv))
	}
	t, ok := messageTypes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownMessageType, name)
	}
	p := reflect.New(t)
	if err := assign(p.Elem(), m, name); err != nil {
		return nil, err
	}
	return p.Elem().Interface().(Message), nil
}
