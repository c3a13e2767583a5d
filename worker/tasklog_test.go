package worker

import "testing"

// Secrets are known by name as Airflow's masker knows them: a variable or
// a connection extra field whose name holds a sensitive word is masked,
// others are not.
func TestNamedMasks(t *testing.T) {
	t.Parallel()
	l := &taskLog{}
	l.addNamedMask("service_api_key", "k-value-1")
	l.addNamedMask("greeting", "hello world")
	l.addNamedMask("extra", map[string]any{
		"region":        "eu-1",
		"Auth_Token":    "t-value-2",
		"credentials":   map[string]any{"private_key": "pk-value-3", "user": "bob"},
		"client_secret": []any{"s-value-4", map[string]any{"nested": "s-value-5"}},
		"port":          5432,
	})
	for in, want := range map[string]string{
		"key k-value-1 token t-value-2":             "key *** token ***",
		"pk pk-value-3 secrets s-value-4 s-value-5": "pk *** secrets *** ***",
		"hello world from bob in eu-1":              "hello world from bob in eu-1",
	} {
		if got := l.maskString(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}
