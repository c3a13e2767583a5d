package dag

import (
	"errors"
	"strings"
	"testing"
)

const diamond = `dag_id: diamond
tasks:
  - {task_id: a, queue: default, command: [sh, -c, 'echo "[1,2,3]"']}
  - {task_id: b, queue: default, depends_on: [a], command: [sh, -c, 'exit 1']}
  - {task_id: c, queue: default, depends_on: [a], command: [sh, -c, 'echo "n=$TASKWIRE_PARAMS"'],
     expand: {n: {from: a}}}          # one instance per element of a's return_value; or a literal list
  - {task_id: d, queue: default, depends_on: [b, c], trigger_rule: all_done, command: [true]}
  - {task_id: e, queue: default, depends_on: [b], command: [true]}     # upstream_failed
`

func TestParseDiamond(t *testing.T) {
	t.Parallel()
	d, err := Parse([]byte(diamond))
	if err != nil {
		t.Fatal(err)
	}
	if d.DagID != "diamond" || len(d.Tasks) != 5 {
		t.Fatalf("got %+v", d)
	}
	c := d.Tasks[2]
	name, x, ok := c.ExpandArg()
	if !ok || name != "n" || x.From != "a" {
		t.Fatalf("c expand: %q %+v %v", name, x, ok)
	}
	if d.Tasks[3].Rule() != AllDone || d.Tasks[4].Rule() != AllSuccess {
		t.Fatalf("rules %s %s", d.Tasks[3].Rule(), d.Tasks[4].Rule())
	}
	if got := d.Tasks[3].Command; len(got) != 1 || got[0] != "true" {
		t.Fatalf("d command %q", got)
	}
}

func TestParseJSONAndLiteralExpand(t *testing.T) {
	t.Parallel()
	d, err := Parse([]byte(`{"dag_id":"j","default_args":{"queue":"q1","retries":2},
"schedule":"@daily","timezone":"Europe/Paris",
"tasks":[{"task_id":"m","command":["true"],"expand":{"x":[1,"two",{"k":3}]}},
{"task_id":"n","task":"sum","depends_on":["m"],"trigger_rule":"none_failed"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, x, _ := d.Tasks[0].ExpandArg()
	if len(x.Literal) != 3 || x.From != "" {
		t.Fatalf("literal %+v", x)
	}
	if _, err := d.ParseSchedule(); err != nil {
		t.Fatal(err)
	}
}

func TestParseExpandFromAddsDependency(t *testing.T) {
	t.Parallel()
	d, err := Parse([]byte("dag_id: x\ntasks:\n- {task_id: a, queue: q, command: [true]}\n- {task_id: b, queue: q, command: [true], expand: {v: {from: a}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Tasks[1].DependsOn; len(got) != 1 || got[0] != "a" {
		t.Fatalf("depends_on %v", got)
	}
}

// TestParseRefuses checks that each bad document gives a ValidationError
// naming every problem, with its field and line.
func TestParseRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []string // "line N: field: substring"
	}{
		{"cycle", `dag_id: c
tasks:
  - {task_id: a, queue: q, command: [true], depends_on: [c]}
  - {task_id: b, queue: q, command: [true], depends_on: [a]}
  - {task_id: c, queue: q, command: [true], depends_on: [b]}
`, []string{"line 3: tasks[0].depends_on: cycle: a → b → c → a"}},
		{"unknown_upstream_and_dup_and_rule", `dag_id: bad
tasks:
  - task_id: a
    queue: q
    command: [true]
  - task_id: a
    queue: q
    command: [true]
  - task_id: b
    queue: q
    command: [true]
    depends_on: [zz]
    trigger_rule: all_sucess
`, []string{
			`line 6: tasks[1].task_id: duplicate task_id "a" (also tasks[0], line 3)`,
			`line 12: tasks[2].depends_on: unknown upstream task "zz"`,
			`line 13: tasks[2].trigger_rule: unknown trigger rule "all_sucess"`,
		}},
		{"unknown_field", "dag_id: u\ntasks:\n  - {task_id: a, queue: q, command: [true], dependson: [b]}\n",
			[]string{`line 3: field dependson not found`}},
		{"syntax", "dag_id: [\n", []string{"line 1: did not find expected node content"}},
		{"bad_expand", `dag_id: e
tasks:
  - {task_id: c, queue: q, command: [true], expand: {x: {form: a}}}
  - {task_id: d, queue: q, command: [true], expand: {x: 7}}
`, []string{
			`line 3: expand: unknown field "form"`,
			`line 4: expand takes a list`,
		}},
		{"bad_expand_refs", `dag_id: e
tasks:
  - {task_id: a, queue: q, command: [true], expand: {x: {from: nope}}}
  - {task_id: b, queue: q, command: [true], expand: {x: [1], y: [2]}}
`, []string{
			`line 3: tasks[0].expand.x.from: unknown upstream task "nope"`,
			`line 4: tasks[1].expand: expand takes one argument, got 2`,
		}},
		{"self_expand", "dag_id: e\ntasks:\n  - {task_id: f, queue: q, command: [true], expand: {x: {from: f}}}\n",
			[]string{`line 3: tasks[0].expand.x.from: task f expands over itself`}},
		{"missing_parts", `dag_id: "has space"
schedule: "61 * * * *"
timezone: Mars/Olympus
tasks:
  - {task_id: a, command: [true]}
  - {task_id: b, queue: Q!, task: t, command: [x], retries: 500, depends_on: [b]}
  - {task_id: c, queue: q}
`, []string{
			`line 1: dag_id: dag_id "has space"`,
			`line 2: schedule: bad schedule "61 * * * *"`,
			`line 3: timezone: unknown time zone`,
			`line 5: tasks[0].queue: task a needs a queue`,
			`line 6: tasks[1].queue: queue "Q!"`,
			`line 6: tasks[1].command: task b has both`,
			`line 6: tasks[1].retries: 500 out of range`,
			`line 6: tasks[1].depends_on: task b depends on itself`,
			`line 7: tasks[2]: task c needs a command or a task`,
		}},
		{"no_tasks", "dag_id: x\n", []string{"tasks: a DAG needs at least one task"}},
		{"empty", "", []string{"empty document"}},
		{"literal_over_cap", "dag_id: x\nmax_map_length: 2\ntasks:\n  - {task_id: a, queue: q, command: [true], expand: {n: [1, 2, 3]}}\n",
			[]string{"line 4: tasks[0].expand.n: 3 elements exceed the map size limit of 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := Parse([]byte(tt.doc))
			if d != nil {
				t.Fatalf("got a DAG %+v", d)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v (%T), want *ValidationError", err, err)
			}
			if len(ve.Problems) != len(tt.want) {
				t.Errorf("%d problems, want %d: %v", len(ve.Problems), len(tt.want), err)
			}
			for _, w := range tt.want {
				found := false
				for _, p := range ve.Problems {
					if strings.Contains(p.String(), w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no problem like %q in %v", w, err)
				}
			}
		})
	}
}
