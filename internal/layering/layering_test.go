package layering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/taskwire/taskwire"

// cmdLinesMax bounds the non-test code of a cmd/* package: flag parsing
// and wiring, no more.
const cmdLinesMax = 300

// natsAllowed may import nats.go and call the raw escape hatches in
// non-test code.
var natsAllowed = []string{
	module + "/queue",
	module + "/queue/queuetest",
	module + "/internal/natstest",
}

// serverAllowed may import nats-server in non-test code.
var serverAllowed = []string{
	module + "/queue",
	module + "/internal/natstest",
}

// leaves import no taskwire package.
var leaves = []string{module + "/protocol", module + "/activity"}

// pkg is what the rules read of a package.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	// The test files (in-package and external) and their imports.
	TestGoFiles, XTestGoFiles []string
	TestImports, XTestImports []string
	// lines is the number of lines of GoFiles; rawCalls the escape-hatch
	// calls found in them, testRawCalls those found in the test files
	// ("file:line .JetStream()").
	lines                  int
	rawCalls, testRawCalls []string
}

// check returns every broken rule.
func check(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, "github.com/nats-io/nats.go") && !slices.Contains(natsAllowed, p.ImportPath):
				out = append(out, fmt.Sprintf("%s imports %s: only queue speaks NATS; add a domain operation to queue", p.ImportPath, imp))
			case strings.HasPrefix(imp, "github.com/nats-io/nats-server") && !slices.Contains(serverAllowed, p.ImportPath):
				out = append(out, fmt.Sprintf("%s imports %s: only queue (embedded) and internal/natstest run servers", p.ImportPath, imp))
			case slices.Contains(leaves, p.ImportPath) && (imp == module || strings.HasPrefix(imp, module+"/")):
				out = append(out, fmt.Sprintf("%s imports %s: it must import no taskwire package", p.ImportPath, imp))
			case strings.HasPrefix(p.ImportPath, module+"/cmd/") && !stdlib(imp) && !strings.HasPrefix(imp, module+"/"):
				out = append(out, fmt.Sprintf("%s imports %s: a binary only wires (standard library and taskwire packages)", p.ImportPath, imp))
			}
		}
		if !slices.Contains(natsAllowed, p.ImportPath) {
			for _, c := range p.rawCalls {
				out = append(out, fmt.Sprintf("%s calls %s: the raw JetStream escape hatch is for queue/queuetest", p.ImportPath, c))
			}
			for _, c := range p.testRawCalls {
				out = append(out, fmt.Sprintf("%s (tests) calls %s: the raw JetStream escape hatch is for queue/queuetest; use its helpers", p.ImportPath, c))
			}
			for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
				if strings.HasPrefix(imp, "github.com/nats-io/nats.go") {
					out = append(out, fmt.Sprintf("%s (tests) imports %s: only queue speaks NATS; tests inspect and fault the broker through queue/queuetest", p.ImportPath, imp))
				}
			}
		}
		if strings.HasPrefix(p.ImportPath, module+"/cmd/") && p.lines > cmdLinesMax {
			out = append(out, fmt.Sprintf("%s has %d lines of non-test code (at most %d): a binary only wires; move the rest into a package", p.ImportPath, p.lines, cmdLinesMax))
		}
	}
	return out
}

// stdlib reports whether path is a standard-library package (no dot in
// its first element).
func stdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// load lists the module's packages with go list and reads their files.
func load(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		fset := token.NewFileSet()
		read := func(names []string, calls *[]string) int {
			lines := 0
			for _, name := range names {
				path := filepath.Join(p.Dir, name)
				src, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				lines += bytes.Count(src, []byte("\n"))
				f, err := parser.ParseFile(fset, path, src, 0)
				if err != nil {
					t.Fatal(err)
				}
				ast.Inspect(f, func(n ast.Node) bool {
					if c, ok := n.(*ast.CallExpr); ok && len(c.Args) == 0 {
						if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "JetStream" {
							*calls = append(*calls, fmt.Sprintf("%s .JetStream()", fset.Position(c.Pos())))
						}
					}
					return true
				})
			}
			return lines
		}
		p.lines = read(p.GoFiles, &p.rawCalls)
		read(slices.Concat(p.TestGoFiles, p.XTestGoFiles), &p.testRawCalls)
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages: not the module", len(pkgs))
	}
	return pkgs
}

func TestLayering(t *testing.T) {
	for _, v := range check(load(t)) {
		t.Error(v)
	}
}

func TestRulesCatchViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    pkg
		want string // a part of the one violation expected; "" for none
	}{
		{"service imports jetstream", pkg{ImportPath: module + "/worker", Imports: []string{"github.com/nats-io/nats.go/jetstream"}}, "only queue speaks NATS"},
		{"service imports nats", pkg{ImportPath: module + "/executor", Imports: []string{"github.com/nats-io/nats.go"}}, "only queue speaks NATS"},
		{"cli imports nats", pkg{ImportPath: module + "/cli", Imports: []string{"github.com/nats-io/nats.go"}}, "only queue speaks NATS"},
		{"queue imports jetstream", pkg{ImportPath: module + "/queue", Imports: []string{"github.com/nats-io/nats.go/jetstream", "github.com/nats-io/nats-server/v2/server"}}, ""},
		{"natstest imports nats", pkg{ImportPath: module + "/internal/natstest", Imports: []string{"github.com/nats-io/nats.go", "github.com/nats-io/nats-server/v2/server"}}, ""},
		{"service runs a server", pkg{ImportPath: module + "/triggerer", Imports: []string{"github.com/nats-io/nats-server/v2/server"}}, "run servers"},
		{"bench runs a server", pkg{ImportPath: module + "/internal/bench", Imports: []string{"github.com/nats-io/nats-server/v2/server"}}, "run servers"},
		{"service uses the escape hatch", pkg{ImportPath: module + "/executor", rawCalls: []string{"store.go:1 .JetStream()"}}, "escape hatch"},
		{"bench uses the escape hatch", pkg{ImportPath: module + "/internal/bench", rawCalls: []string{"raw.go:1 .JetStream()"}}, "escape hatch"},
		{"bench imports jetstream", pkg{ImportPath: module + "/internal/bench", Imports: []string{"github.com/nats-io/nats.go/jetstream"}}, "only queue speaks NATS"},
		{"a test imports jetstream", pkg{ImportPath: module + "/worker", TestImports: []string{"github.com/nats-io/nats.go/jetstream"}}, "through queue/queuetest"},
		{"an external test imports nats", pkg{ImportPath: module + "/integration", XTestImports: []string{"github.com/nats-io/nats.go"}}, "through queue/queuetest"},
		{"a test uses the escape hatch", pkg{ImportPath: module + "/executor", testRawCalls: []string{"x_test.go:1 .JetStream()"}}, "use its helpers"},
		{"queuetest imports jetstream", pkg{ImportPath: module + "/queue/queuetest", Imports: []string{"github.com/nats-io/nats.go/jetstream"}, rawCalls: []string{"queuetest.go:1 .JetStream()"}}, ""},
		{"a test runs a server", pkg{ImportPath: module + "/integration", TestImports: []string{"github.com/nats-io/nats-server/v2/server"}}, ""},
		{"protocol imports activity", pkg{ImportPath: module + "/protocol", Imports: []string{module + "/activity"}}, "no taskwire package"},
		{"activity imports protocol", pkg{ImportPath: module + "/activity", Imports: []string{module + "/protocol", "encoding/json"}}, "no taskwire package"},
		{"activity imports queue", pkg{ImportPath: module + "/activity", Imports: []string{module + "/queue"}}, "no taskwire package"},
		{"cmd imports a third-party module", pkg{ImportPath: module + "/cmd/executor", Imports: []string{"gopkg.in/yaml.v3"}}, "only wires"},
		{"cmd imports taskwire and std", pkg{ImportPath: module + "/cmd/worker", Imports: []string{"flag", "net/http", module + "/worker", module + "/cli"}}, ""},
		{"cmd too long", pkg{ImportPath: module + "/cmd/worker", lines: cmdLinesMax + 1}, "lines of non-test code"},
		{"library long", pkg{ImportPath: module + "/worker", lines: 10 * cmdLinesMax}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := check([]pkg{tc.p})
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("violations %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("violations %q, want one saying %q", got, tc.want)
			}
		})
	}
}
