package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
)

type composeFile struct {
	Services map[string]struct {
		Command []string `yaml:"command"`
	} `yaml:"services"`
}

// TestComposeServices runs docker-compose.yml's executor, workers (Go,
// Python, Java) and triggerer commands, flag for flag, as local processes, only with the
// compose network's names replaced by local addresses, and runs tasks
// through them, one of them deferring.
func TestComposeServices(t *testing.T) {
	parallel(t, shared)
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	b := buildBins(t, testbin.NoRace)
	ns := natstest.RunProcess(t)
	apiAddr := testbin.FreeAddr(t)
	local := strings.NewReplacer(
		"nats://nats:4222", ns.ClientURL(),
		"0.0.0.0:8080", apiAddr,
		"http://executor:8080", "http://"+apiAddr,
		"gotasks ", b.gotasks+" ",
		"python=python3 /opt/taskwire/examples/pytasks/tasks.py", "python="+testbin.Python(t)+" "+filepath.Join(repoRoot(t), "examples/pytasks/tasks.py"),
		"/opt/taskwire/java/classes:/opt/taskwire/java/taskwire-sdk.jar", testbin.JavaTasksClasspath(t),
	)
	// Each service's /metrics, /healthz and /readyz address: 0.0.0.0:9090
	// becomes a port of its own here, as each service has its own host there.
	probes := map[string]string{"executor": apiAddr}
	command := func(service, bin string) []string {
		cmd := cf.Services[service].Command
		if len(cmd) < 2 {
			t.Fatalf("service %s has no command", service)
		}
		args := make([]string, 0, len(cmd)-1)
		for i, a := range cmd[1:] {
			if a == "/data" && i > 0 {
				a = t.TempDir()
			}
			if a == "0.0.0.0:9090" {
				a = testbin.FreeAddr(t)
				probes[service] = a
			}
			args = append(args, local.Replace(a))
		}
		return args
	}
	execArgs := command("executor", b.executor)
	ex := testbin.Start(t, "executor", b.executor, nil, execArgs...)
	waitHealthy(t, "http://"+apiAddr, ex, nil)
	for _, name := range []string{"worker", "worker-python", "worker-java"} {
		testbin.Start(t, name, b.worker, nil, command(name, b.worker)...)
	}
	for _, name := range []string{"triggerer-1", "triggerer-2"} {
		testbin.Start(t, name, b.triggerer, nil, command(name, b.triggerer)...)
	}

	api, err := client.New(client.Config{URL: "http://" + apiAddr})
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []activity.TaskSpec{
		{Queue: "default", Entrypoint: sh("echo compose")},
		{Queue: "go", Entrypoint: activity.Entrypoint{Task: "noop"}},
		{Queue: "go", Entrypoint: activity.Entrypoint{Task: "wait"}, Params: map[string]any{"seconds": 0.2}},
		{Queue: "python", Entrypoint: activity.Entrypoint{Task: "noop"}},
		{Queue: "java", Entrypoint: activity.Entrypoint{Task: "noop"}},
	} {
		ti, err := api.Submit(t.Context(), spec)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := contextWithTimeout(t, 30*time.Second)
		ti, err = api.Wait(ctx, ti.ID, nil)
		cancel()
		if err != nil || ti.State != activity.StateSuccess {
			t.Fatalf("%s task: %v %+v", spec.Queue, err, ti)
		}
	}
	for _, name := range []string{"executor", "worker", "worker-python", "worker-java", "triggerer-1", "triggerer-2"} {
		addr := probes[name]
		if addr == "" {
			t.Errorf("service %s serves no /readyz", name)
			continue
		}
		testbin.Eventually(t, 10*time.Second, name+" /readyz", func() bool { return ready("http://" + addr + "/readyz") })
		if code, body := httpGet(t, "http://"+addr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "taskwire_nats_connected 1") {
			t.Errorf("%s /metrics: %d", name, code)
		}
	}
}

// TestComposeAirflowWorker runs docker-compose.airflow.yml's worker-airflow
// command, flag for flag (the compose network's names replaced by local
// addresses, the image's paths by this checkout's, and --log-level debug to
// see its forks), with its environment and the Airflow venv's python as the
// image's: its worker.yaml (integrations/airflow/worker.yaml) starts the
// airflow queue's prefork zygote from the taskwire Python SDK the image
// installs, and a `python -m taskwire_airflow.run` task is forked from it
// (a bad workload here: Airflow's services are TestAirflowExecutor's).
func TestComposeAirflowWorker(t *testing.T) {
	parallel(t, shared)
	venv := airflowVenv(t)
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.airflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	svc := cf.Services["worker-airflow"]
	if len(svc.Command) < 2 || svc.Command[0] != "worker" {
		t.Fatalf("worker-airflow's command: %q", svc.Command)
	}
	if _, ok := svc.Environment["AIRFLOW__TASKWIRE__FORKSERVER_SOCKET"]; ok {
		t.Errorf("worker-airflow still points its tasks at a fork server")
	}
	c := newCluster(t, clusterOpts{plain: true, logLevel: "info"})
	root := repoRoot(t)
	local := strings.NewReplacer(
		"nats://nats:4222", c.natsURL,
		"http://executor:8080", c.apiURL,
		"/opt/taskwire/integrations/airflow/worker.yaml", filepath.Join(root, "integrations", "airflow", "worker.yaml"),
		"/tmp/taskwire-worker", t.TempDir(),
		"0.0.0.0:9090", testbin.FreeAddr(t),
	)
	args := make([]string, 0, len(svc.Command)+2)
	for _, a := range svc.Command[1:] {
		args = append(args, local.Replace(a))
	}
	args = append(append(args, c.natsArgs...), "--log-level", "debug")
	// The image's python (with Airflow, taskwire-airflow and the taskwire
	// SDK installed): the venv's first on PATH, this checkout's packages.
	env := []string{
		"PATH=" + filepath.Join(venv, "bin") + ":" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AIRFLOW_HOME=" + t.TempDir(),
		"PYTHONPATH=" + filepath.Join(root, "integrations", "airflow", "src") + string(os.PathListSeparator) + filepath.Join(root, "sdk", "python", "src"),
	}
	for k, v := range svc.Environment {
		env = append(env, k+"="+v)
	}
	w := testbin.Start(t, "worker-airflow", c.bins.worker, env, args...)
	waitZygote(t, w)

	ti, err := c.api.Submit(t.Context(), activity.TaskSpec{Queue: "airflow",
		Entrypoint: activity.Entrypoint{Command: []string{"python", "-m", "taskwire_airflow.run"},
			Env: map[string]string{"TASKWIRE_AIRFLOW_WORKLOAD": `{"type": "nope"}`}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout(t, 2*time.Minute)
	ti, err = c.api.Wait(ctx, ti.ID, nil)
	cancel()
	if err != nil || ti.State != activity.StateFailed {
		t.Fatalf("the bad workload's task: %v %+v", err, ti)
	}
	if !strings.Contains(w.Output(), "task process forked") {
		t.Errorf("the workload did not run in a child of the zygote:\n%s", w.Output())
	}
}
