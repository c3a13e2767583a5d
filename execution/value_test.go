package execution

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDecodeValueKeepsIntegers(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want any
	}{
		{`42`, int64(42)},
		{`-7`, int64(-7)},
		{`4.5`, 4.5},
		{`1e3`, 1000.0},
		{`18446744073709551616`, 18446744073709551616.0},
		{`"x"`, "x"},
		{`null`, nil},
		{``, nil},
		{`{"a":[1,2.5,{"b":3}]}`, map[string]any{"a": []any{int64(1), 2.5, map[string]any{"b": int64(3)}}}},
	} {
		got, err := DecodeValue(json.RawMessage(tc.raw))
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.raw, got, tc.want)
		}
	}
	if _, err := DecodeValue(json.RawMessage(`{"a":`)); err == nil {
		t.Error("truncated JSON decoded without error")
	}
}
