package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// maxDepth bounds the nesting of decoded values, as encoding/json does, so a
// frame of nested arrays cannot exhaust the stack.
const maxDepth = 10000

// decodeJSON decodes a JSON body into a JSON-like tree with int64 integers.
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: json: %v", ErrMalformedFrame, err)
	}
	if rest := body[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the body", ErrMalformedFrame, len(rest))
	}
	return normalizeJSON(v)
}

func normalizeJSON(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("%w: number %s: %v", ErrMalformedFrame, x, err)
		}
		// JSON does not tell 1.0 from 1, nor does encoding/json when it
		// writes a float64: an integral value is an integer.
		if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return int64(f), nil
		}
		return f, nil
	case []any:
		for i, e := range x {
			n, err := normalizeJSON(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	case map[string]any:
		for k, e := range x {
			n, err := normalizeJSON(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	}
	return v, nil
}

// mpReader decodes msgpack into a JSON-like tree. It is written out rather
// than taken from the msgpack library so that it bounds nesting, never
// allocates more than the input can fill, and yields the same value types
// as the JSON codec.
type mpReader struct {
	b   []byte
	off int
	// airflow keeps what Airflow's dialect needs to re-encode a body byte
	// for byte: maps as Map (keys in order), timestamps as Timestamp,
	// float32 as float32 and integers above MaxInt64 as uint64.
	airflow bool
}

func decodeMsgpack(body []byte) (any, error) {
	r := &mpReader{b: body}
	v, err := r.value(0)
	if err != nil {
		return nil, fmt.Errorf("%w: msgpack at byte %d: %v", ErrMalformedFrame, r.off, err)
	}
	if r.off != len(body) {
		return nil, fmt.Errorf("%w: %d bytes after the body", ErrMalformedFrame, len(body)-r.off)
	}
	return v, nil
}

var errShort = errors.New("unexpected end of body")

func (r *mpReader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, errShort
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *mpReader) uint(size int) (uint64, error) {
	s, err := r.take(size)
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(s[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), nil
	}
	return binary.BigEndian.Uint64(s), nil
}

// length reads a size-byte length and checks that at least min bytes per
// element remain for it.
func (r *mpReader) length(size, min int) (int, error) {
	n, err := r.uint(size)
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)-r.off)/uint64(min) {
		return 0, errShort
	}
	return int(n), nil
}

func (r *mpReader) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	s, err := r.take(1)
	if err != nil {
		return nil, err
	}
	c := s[0]
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0x80 && c <= 0x8f:
		return r.mapN(int(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f:
		return r.arrayN(int(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		return r.str(int(c & 0x1f))
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := r.length(1<<(c-0xc4), 1)
		if err != nil {
			return nil, err
		}
		b, _ := r.take(n)
		return bytes.Clone(b), nil
	case 0xc7, 0xc8, 0xc9:
		n, err := r.length(1<<(c-0xc7), 1)
		if err != nil {
			return nil, err
		}
		return r.ext(n)
	case 0xca:
		u, err := r.uint(4)
		if r.airflow {
			return math.Float32frombits(uint32(u)), err
		}
		return float64(math.Float32frombits(uint32(u))), err
	case 0xcb:
		u, err := r.uint(8)
		return math.Float64frombits(u), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := r.uint(1 << (c - 0xcc))
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			if r.airflow {
				return u, nil
			}
			return float64(u), nil
		}
		return int64(u), nil
	case 0xd0:
		u, err := r.uint(1)
		return int64(int8(u)), err
	case 0xd1:
		u, err := r.uint(2)
		return int64(int16(u)), err
	case 0xd2:
		u, err := r.uint(4)
		return int64(int32(u)), err
	case 0xd3:
		u, err := r.uint(8)
		return int64(u), err
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return r.ext(1 << (c - 0xd4))
	case 0xd9, 0xda, 0xdb:
		n, err := r.length(1<<(c-0xd9), 1)
		if err != nil {
			return nil, err
		}
		return r.str(n)
	case 0xdc, 0xdd:
		n, err := r.length(2<<(c-0xdc), 1)
		if err != nil {
			return nil, err
		}
		return r.arrayN(n, depth)
	case 0xde, 0xdf:
		n, err := r.length(2<<(c-0xde), 2)
		if err != nil {
			return nil, err
		}
		return r.mapN(n, depth)
	}
	return nil, fmt.Errorf("invalid code 0x%02x", c)
}

func (r *mpReader) str(n int) (string, error) {
	s, err := r.take(n)
	return string(s), err
}

func (r *mpReader) arrayN(n, depth int) (any, error) {
	if n > len(r.b)-r.off {
		return nil, errShort
	}
	a := make([]any, n)
	for i := range a {
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a[i] = v
	}
	return a, nil
}

func (r *mpReader) mapN(n, depth int) (any, error) {
	if n > (len(r.b)-r.off)/2 {
		return nil, errShort
	}
	if r.airflow {
		return r.orderedMap(n, depth)
	}
	m := make(map[string]any, n)
	for range n {
		k, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("map key is %s, want a string", kindOf(k))
		}
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[ks] = v
	}
	return m, nil
}

// ext decodes an extension of n data bytes: only the timestamp (-1), which
// becomes an RFC 3339 string.
func (r *mpReader) ext(n int) (any, error) {
	t, err := r.take(1)
	if err != nil {
		return nil, err
	}
	d, err := r.take(n)
	if err != nil {
		return nil, err
	}
	if int8(t[0]) != -1 {
		return nil, fmt.Errorf("unsupported extension type %d", int8(t[0]))
	}
	var sec int64
	var nsec uint32
	switch n {
	case 4:
		sec = int64(binary.BigEndian.Uint32(d))
	case 8:
		u := binary.BigEndian.Uint64(d)
		nsec, sec = uint32(u>>34), int64(u&(1<<34-1))
	case 12:
		nsec, sec = binary.BigEndian.Uint32(d), int64(binary.BigEndian.Uint64(d[4:]))
	default:
		return nil, fmt.Errorf("timestamp of %d bytes", n)
	}
	if nsec >= 1e9 {
		return nil, fmt.Errorf("timestamp with %d nanoseconds", nsec)
	}
	ts := time.Unix(sec, int64(nsec)).UTC()
	if ts.Year() < 0 || ts.Year() > 9999 {
		return nil, fmt.Errorf("timestamp %d out of range", sec)
	}
	if r.airflow {
		return Timestamp{Time: ts, size: n}, nil
	}
	return ts.Format(time.RFC3339Nano), nil
}

// kindOf names the JSON-like kind of a decoded value, for errors.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "a bool"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case string:
		return "a string"
	case []byte:
		return "binary"
	case []any:
		return "an array"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

// assign stores the decoded value src into dst, following the msgpack (or
// json) tags of structs. nil leaves dst at its zero value; map entries that
// match no field are ignored. path names the place for errors.
func assign(dst reflect.Value, src any, path string) error {
	if src == nil {
		dst.SetZero()
		return nil
	}
	bad := func() error {
		return fmt.Errorf("%w: %s is %s, want %s", ErrMalformedFrame, path, kindOf(src), wantOf(dst.Type()))
	}
	switch dst.Kind() {
	case reflect.String:
		s, ok := src.(string)
		if !ok {
			return bad()
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := src.(bool)
		if !ok {
			return bad()
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := src.(int64)
		if !ok || dst.OverflowInt(n) {
			return bad()
		}
		dst.SetInt(n)
	case reflect.Float32, reflect.Float64:
		switch x := src.(type) {
		case float64:
			dst.SetFloat(x)
		case int64:
			dst.SetFloat(float64(x))
		default:
			return bad()
		}
	case reflect.Interface:
		if dst.NumMethod() != 0 {
			return bad()
		}
		dst.Set(reflect.ValueOf(src))
	case reflect.Pointer:
		p := reflect.New(dst.Type().Elem())
		if err := assign(p.Elem(), src, path); err != nil {
			return err
		}
		dst.Set(p)
	case reflect.Slice:
		a, ok := src.([]any)
		if !ok {
			return bad()
		}
		s := reflect.MakeSlice(dst.Type(), len(a), len(a))
		for i, e := range a {
			if err := assign(s.Index(i), e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Map:
		m, ok := src.(map[string]any)
		if !ok || dst.Type().Key().Kind() != reflect.String {
			return bad()
		}
		if dst.Type() == reflect.TypeFor[map[string]any]() {
			dst.Set(reflect.ValueOf(m))
			return nil
		}
		out := reflect.MakeMapWithSize(dst.Type(), len(m))
		for k, e := range m {
			ev := reflect.New(dst.Type().Elem()).Elem()
			if err := assign(ev, e, path+"."+k); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), ev)
		}
		dst.Set(out)
	case reflect.Struct:
		m, ok := src.(map[string]any)
		if !ok {
			return bad()
		}
		t := dst.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := fieldName(f)
			if name == "" {
				continue
			}
			if e, ok := m[name]; ok {
				if err := assign(dst.Field(i), e, path+"."+name); err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("%w: %s: cannot decode into %s", ErrMalformedFrame, path, dst.Type())
	}
	return nil
}

// fieldName is the wire name of a struct field, or "" to skip it.
func fieldName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, ok := f.Tag.Lookup("msgpack")
	if !ok {
		tag = f.Tag.Get("json")
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}

func wantOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "a map"
	case reflect.Pointer:
		return wantOf(t.Elem())
	}
	return t.String()
}
