package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Airflow's dialect of the task protocol: the frames Airflow's own task
// runner (apache-airflow-task-sdk's execution_time/comms.py) sends and
// expects, which the worker's "airflow" runtime speaks. The framing is the
// same; the bodies differ from the structs of this package:
//
//   - a request is [id, body] or [id, body, context_carrier] (a tracing map);
//   - a response is [id, body, error] with trailing nil slots dropped, so
//     [id] answers a request that returns nothing;
//   - times are msgpack timestamps, and every body is a map in the order
//     Airflow's pydantic models list their fields.
//
// Bodies are kept as generic trees (Map, Timestamp, the JSON-like scalars)
// rather than structs, because the pinned SDK has several dozen message
// types and may add fields: the worker reads what it needs by name. The
// encoder writes msgpack the way Airflow's (msgspec) does, each value in
// its shortest form, so a frame the SDK encoded decodes and re-encodes byte
// for byte (testdata/airflow holds such frames, made by the real SDK).

// Map is a msgpack map of Airflow's dialect, its entries in wire order.
type Map []Field

// Field is one entry of a Map.
type Field struct {
	Key   string
	Value any
}

// Get returns the value of key and whether it is present.
func (m Map) Get(key string) (any, bool) {
	for _, f := range m {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// Str returns key's value when it is a string, else "".
func (m Map) Str(key string) string {
	v, _ := m.Get(key)
	s, _ := v.(string)
	return s
}

// Int returns key's value when it is an integer.
func (m Map) Int(key string) (int, bool) {
	v, _ := m.Get(key)
	switch n := v.(type) {
	case int64:
		return int(n), true
	case int:
		return n, true
	}
	return 0, false
}

// Type returns the body's "type" field.
func (m Map) Type() string { return m.Str("type") }

// Object returns m as a map (for a JSON encoding, which has no order).
func (m Map) Object() map[string]any {
	out := make(map[string]any, len(m))
	for _, f := range m {
		out[f.Key] = f.Value
	}
	return out
}

// AirflowConnection is a ConnectionResult body as Airflow's supervisor
// sends it: every field (the model requires them, nullable), nil when
// empty, and extra as a JSON string. The worker answers a task's
// GetConnection with it, the triggerer a Python-runtime trigger's.
func AirflowConnection(connID, connType, host, schema, login, password string, port int, extra map[string]any) Map {
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	var p, x any
	if port != 0 {
		p = port
	}
	if len(extra) > 0 {
		if b, err := json.Marshal(extra); err == nil {
			x = string(b)
		}
	}
	return Map{
		{Key: "conn_id", Value: connID},
		{Key: "conn_type", Value: connType},
		{Key: "host", Value: opt(host)},
		{Key: "schema", Value: opt(schema)},
		{Key: "login", Value: opt(login)},
		{Key: "password", Value: opt(password)},
		{Key: "port", Value: p},
		{Key: "extra", Value: x},
		{Key: "type", Value: "ConnectionResult"},
	}
}

// Timestamp is a msgpack timestamp (extension -1). Size is the number of
// data bytes it was decoded from (4, 8 or 12), 0 for the shortest form.
type Timestamp struct {
	time.Time
	size int
}

// Plain converts an Airflow tree into the JSON-like values the rest of
// taskwire uses: Map → map[string]any, Timestamp → RFC 3339 string,
// uint64 → float64, float32 → float64.
func Plain(v any) any {
	switch x := v.(type) {
	case Map:
		m := make(map[string]any, len(x))
		for _, f := range x {
			m[f.Key] = Plain(f.Value)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Plain(e)
		}
		return out
	case Timestamp:
		return x.UTC().Format(time.RFC3339Nano)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	}
	return v
}

// AirflowRequest is a decoded request of Airflow's task runner.
type AirflowRequest struct {
	ID   int
	Body Map
	// Carrier is the optional third element (a W3C trace context map or,
	// as the SDK always sends it, nil); HasCarrier says whether the frame
	// had a third element.
	Carrier    any
	HasCarrier bool
}

// AirflowResponse is a response in Airflow's dialect: [id, body, error],
// each of body and error a map or nil.
type AirflowResponse struct {
	ID    int
	Body  Map
	Error Map
}

// DecodeAirflowRequest decodes [id, body] or [id, body, carrier]. body may
// be nil (Airflow's frame allows it); otherwise it must be a map with a
// string "type".
func DecodeAirflowRequest(b []byte) (AirflowRequest, error) {
	arr, err := decodeAirflowArray(b, 2, 3)
	if err != nil {
		return AirflowRequest{}, fmt.Errorf("decode airflow request: %w", err)
	}
	id, err := frameID(arr[0])
	if err != nil {
		return AirflowRequest{}, fmt.Errorf("decode airflow request: %w", err)
	}
	req := AirflowRequest{ID: id}
	if len(arr) == 3 {
		req.Carrier, req.HasCarrier = arr[2], true
		if _, ok := arr[2].(Map); !ok && arr[2] != nil {
			return req, fmt.Errorf("decode airflow request %d: %w: context carrier is %s, want a map or nil", id, ErrMalformedFrame, airflowKind(arr[2]))
		}
	}
	if arr[1] == nil {
		return req, fmt.Errorf("decode airflow request %d: %w: body is nil", id, ErrMalformedFrame)
	}
	m, ok := arr[1].(Map)
	if !ok {
		return req, fmt.Errorf("decode airflow request %d: %w: body is %s, want a map", id, ErrMalformedFrame, airflowKind(arr[1]))
	}
	req.Body = m
	if t, ok := m.Get("type"); !ok {
		return req, fmt.Errorf("decode airflow request %d: %w: body has no type", id, ErrMalformedFrame)
	} else if _, ok := t.(string); !ok {
		return req, fmt.Errorf("decode airflow request %d: %w: body type is %s, want a string", id, ErrMalformedFrame, airflowKind(t))
	}
	return req, nil
}

// EncodeAirflowRequest encodes a request as Airflow's runner does.
func EncodeAirflowRequest(r AirflowRequest) ([]byte, error) {
	arr := []any{r.ID, r.Body}
	if r.Body == nil {
		arr[1] = nil
	}
	if r.HasCarrier {
		arr = append(arr, r.Carrier)
	}
	return EncodeAirflow(arr)
}

// DecodeAirflowResponse decodes [id], [id, body] or [id, body, error].
func DecodeAirflowResponse(b []byte) (AirflowResponse, error) {
	arr, err := decodeAirflowArray(b, 1, 3)
	if err != nil {
		return AirflowResponse{}, fmt.Errorf("decode airflow response: %w", err)
	}
	id, err := frameID(arr[0])
	if err != nil {
		return AirflowResponse{}, fmt.Errorf("decode airflow response: %w", err)
	}
	resp := AirflowResponse{ID: id}
	for i, dst := range []*Map{&resp.Body, &resp.Error} {
		if len(arr) <= i+1 || arr[i+1] == nil {
			continue
		}
		m, ok := arr[i+1].(Map)
		if !ok {
			return resp, fmt.Errorf("decode airflow response %d: %w: element %d is %s, want a map or nil", id, ErrMalformedFrame, i+1, airflowKind(arr[i+1]))
		}
		*dst = m
	}
	return resp, nil
}

// EncodeAirflowResponse encodes a response as Airflow's supervisor does:
// always three elements (msgspec's omit_defaults leaves array-like
// structs whole).
func EncodeAirflowResponse(r AirflowResponse) ([]byte, error) {
	arr := []any{r.ID, nil, nil}
	if r.Body != nil {
		arr[1] = r.Body
	}
	if r.Error != nil {
		arr[2] = r.Error
	}
	return EncodeAirflow(arr)
}

func decodeAirflowArray(b []byte, minLen, maxLen int) ([]any, error) {
	r := &mpReader{b: b, airflow: true}
	v, err := r.value(0)
	if err != nil {
		return nil, fmt.Errorf("%w: msgpack at byte %d: %v", ErrMalformedFrame, r.off, err)
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the body", ErrMalformedFrame, len(b)-r.off)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: body is %s, want an array", ErrMalformedFrame, airflowKind(v))
	}
	if len(arr) < minLen || len(arr) > maxLen {
		return nil, fmt.Errorf("%w: body has %d elements, want %d to %d", ErrMalformedFrame, len(arr), minLen, maxLen)
	}
	return arr, nil
}

func (r *mpReader) orderedMap(n, depth int) (any, error) {
	m := make(Map, 0, n)
	for range n {
		k, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("map key is %s, want a string", airflowKind(k))
		}
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m = append(m, Field{ks, v})
	}
	return m, nil
}

func airflowKind(v any) string {
	switch v.(type) {
	case Map:
		return "a map"
	case Timestamp:
		return "a timestamp"
	case uint64:
		return "an integer"
	case float32:
		return "a float"
	}
	return kindOf(v)
}

// EncodeAirflow encodes v as msgpack the way msgspec does: integers, strings,
// arrays, maps and binaries in their shortest form, floats as float64 (a
// float32 as float32), timestamps in the shortest extension that holds them
// (or the size they were decoded from). Besides the decoded types it takes
// int, map[string]any (keys sorted), []string, map[string]string and
// time.Time.
func EncodeAirflow(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeAirflow(&buf, v, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeAirflow(w *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		w.WriteByte(0xc0)
	case bool:
		if x {
			w.WriteByte(0xc3)
		} else {
			w.WriteByte(0xc2)
		}
	case int:
		writeInt(w, int64(x))
	case int64:
		writeInt(w, x)
	case int32:
		writeInt(w, int64(x))
	case uint64:
		writeUint(w, x)
	case float64:
		w.WriteByte(0xcb)
		_ = binary.Write(w, binary.BigEndian, math.Float64bits(x))
	case float32:
		w.WriteByte(0xca)
		_ = binary.Write(w, binary.BigEndian, math.Float32bits(x))
	case string:
		writeStr(w, x)
	case []byte:
		n := len(x)
		switch {
		case n < 1<<8:
			w.Write([]byte{0xc4, byte(n)})
		case n < 1<<16:
			w.WriteByte(0xc5)
			_ = binary.Write(w, binary.BigEndian, uint16(n))
		default:
			w.WriteByte(0xc6)
			_ = binary.Write(w, binary.BigEndian, uint32(n))
		}
		w.Write(x)
	case []any:
		writeLen(w, len(x), 0x90, 0xdc)
		for _, e := range x {
			if err := encodeAirflow(w, e, depth+1); err != nil {
				return err
			}
		}
	case []string:
		writeLen(w, len(x), 0x90, 0xdc)
		for _, e := range x {
			writeStr(w, e)
		}
	case Map:
		writeLen(w, len(x), 0x80, 0xde)
		for _, f := range x {
			writeStr(w, f.Key)
			if err := encodeAirflow(w, f.Value, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeLen(w, len(x), 0x80, 0xde)
		for _, k := range keys {
			writeStr(w, k)
			if err := encodeAirflow(w, x[k], depth+1); err != nil {
				return err
			}
		}
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return encodeAirflow(w, m, depth)
	case time.Time:
		writeTimestamp(w, x, 0)
	case Timestamp:
		writeTimestamp(w, x.Time, x.size)
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			writeInt(w, rv.Int())
			return nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			writeUint(w, rv.Uint())
			return nil
		}
		return fmt.Errorf("airflow msgpack: cannot encode %T", v)
	}
	return nil
}

func writeUint(w *bytes.Buffer, u uint64) {
	switch {
	case u <= 0x7f:
		w.WriteByte(byte(u))
	case u <= math.MaxUint8:
		w.Write([]byte{0xcc, byte(u)})
	case u <= math.MaxUint16:
		w.WriteByte(0xcd)
		_ = binary.Write(w, binary.BigEndian, uint16(u))
	case u <= math.MaxUint32:
		w.WriteByte(0xce)
		_ = binary.Write(w, binary.BigEndian, uint32(u))
	default:
		w.WriteByte(0xcf)
		_ = binary.Write(w, binary.BigEndian, u)
	}
}

func writeInt(w *bytes.Buffer, n int64) {
	switch {
	case n >= 0:
		writeUint(w, uint64(n))
	case n >= -32:
		w.WriteByte(byte(int8(n)))
	case n >= math.MinInt8:
		w.Write([]byte{0xd0, byte(int8(n))})
	case n >= math.MinInt16:
		w.WriteByte(0xd1)
		_ = binary.Write(w, binary.BigEndian, int16(n))
	case n >= math.MinInt32:
		w.WriteByte(0xd2)
		_ = binary.Write(w, binary.BigEndian, int32(n))
	default:
		w.WriteByte(0xd3)
		_ = binary.Write(w, binary.BigEndian, n)
	}
}

func writeStr(w *bytes.Buffer, s string) {
	n := len(s)
	switch {
	case n < 32:
		w.WriteByte(0xa0 | byte(n))
	case n < 1<<8:
		w.Write([]byte{0xd9, byte(n)})
	case n < 1<<16:
		w.WriteByte(0xda)
		_ = binary.Write(w, binary.BigEndian, uint16(n))
	default:
		w.WriteByte(0xdb)
		_ = binary.Write(w, binary.BigEndian, uint32(n))
	}
	w.WriteString(s)
}

func writeLen(w *bytes.Buffer, n int, fix, c16 byte) {
	switch {
	case n < 16:
		w.WriteByte(fix | byte(n))
	case n < 1<<16:
		w.WriteByte(c16)
		_ = binary.Write(w, binary.BigEndian, uint16(n))
	default:
		w.WriteByte(c16 + 1)
		_ = binary.Write(w, binary.BigEndian, uint32(n))
	}
}

func writeTimestamp(w *bytes.Buffer, t time.Time, size int) {
	sec, nsec := t.Unix(), uint32(t.Nanosecond())
	if size == 0 {
		switch {
		case sec>>34 == 0 && nsec == 0 && sec <= math.MaxUint32:
			size = 4
		case sec>>34 == 0:
			size = 8
		default:
			size = 12
		}
	}
	switch size {
	case 4:
		w.Write([]byte{0xd6, 0xff})
		_ = binary.Write(w, binary.BigEndian, uint32(sec))
	case 8:
		w.Write([]byte{0xd7, 0xff})
		_ = binary.Write(w, binary.BigEndian, uint64(nsec)<<34|uint64(sec))
	default:
		w.Write([]byte{0xc7, 12, 0xff})
		_ = binary.Write(w, binary.BigEndian, nsec)
		_ = binary.Write(w, binary.BigEndian, sec)
	}
}

// ParseAirflowTime reads a time Airflow sent: a Timestamp or an RFC 3339
// string. ok is false for anything else (nil included).
func ParseAirflowTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case Timestamp:
		return x.Time, true
	case time.Time:
		return x, true
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// ParseAirflowDuration reads a timedelta as Airflow's encoder writes it: an
// ISO 8601 duration ("PT3605S", "P1DT2H3M4.5S", "-PT5S"), or a number of
// seconds. nil is zero.
func ParseAirflowDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		return time.Duration(x * float64(time.Second)), nil
	case string:
		return parseISODuration(x)
	}
	return 0, fmt.Errorf("duration is %s, want an ISO 8601 duration string", airflowKind(v))
}

func parseISODuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("duration %q: want an ISO 8601 duration like PT90S", s)
	rest, neg := s, false
	if r, ok := strings.CutPrefix(rest, "-"); ok {
		rest, neg = r, true
	}
	rest, ok := strings.CutPrefix(rest, "P")
	if !ok || rest == "" {
		return 0, bad
	}
	var total float64
	inTime, parts := false, 0
	units := map[bool]map[byte]float64{
		false: {'W': 7 * 86400, 'D': 86400},
		true:  {'H': 3600, 'M': 60, 'S': 1},
	}
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, bad
			}
			inTime, rest = true, rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, bad
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		mult, ok := units[inTime][rest[i]]
		if err != nil || !ok {
			return 0, bad
		}
		total += n * mult
		rest = rest[i+1:]
		parts++
	}
	if parts == 0 {
		return 0, bad
	}
	if total > math.MaxInt64/float64(time.Second) {
		return 0, bad
	}
	d := time.Duration(total * float64(time.Second))
	if neg {
		d = -d
	}
	return d, nil
}
