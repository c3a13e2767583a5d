package testbin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The environment variables ./test.sh exports for tests that run the
// Python and Java SDKs as their users do: installed as packages.
const (
	// PythonEnv names a python with the taskwire package installed
	// (./test.sh: .venv/bin/python).
	PythonEnv = "TASKWIRE_TEST_PYTHON"
	// JavaSDKJarEnv names the Java SDK's jar (./test.sh: mvn -f sdk/java
	// package, sdk/java/target/taskwire-sdk.jar).
	JavaSDKJarEnv = "TASKWIRE_TEST_JAVA_SDK_JAR"
)

var python = sync.OnceValues(func() (string, error) {
	p := os.Getenv(PythonEnv)
	if p == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		p = filepath.Join(root, ".venv", "bin", "python")
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no python with the taskwire SDK: $%s is not set and %s does not exist; "+
				"run ./test.sh (it makes the venv), or: python3 -m venv .venv && .venv/bin/pip install ./sdk/python", PythonEnv, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "-c", "import taskwire, sys; sys.stdout.write(taskwire.__file__)").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s cannot import taskwire (%v): install the SDK with %s -m pip install ./sdk/python, or run ./test.sh\n%s", p, err, p, out)
	}
	return p, nil
})

// Python returns the path of a python interpreter that imports the
// installed taskwire package: $TASKWIRE_TEST_PYTHON, else the repository's
// .venv. A machine without one fails the test, naming the fix.
func Python(t testing.TB) string {
	t.Helper()
	p, err := python()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var javaSDKJar = sync.OnceValues(func() (string, error) {
	jar := os.Getenv(JavaSDKJarEnv)
	if jar == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		jar = filepath.Join(root, "sdk", "java", "target", "taskwire-sdk.jar")
	}
	if _, err := os.Stat(jar); err != nil {
		return "", fmt.Errorf("no Java SDK jar (%v): set $%s, or build it with mvn -q -f sdk/java package (./test.sh does)", err, JavaSDKJarEnv)
	}
	return filepath.Abs(jar)
})

// JavaSDKJar returns the path of the Java SDK's jar: $TASKWIRE_TEST_JAVA_SDK_JAR,
// else sdk/java/target/taskwire-sdk.jar. A missing jar fails the test,
// naming the fix.
func JavaSDKJar(t testing.TB) string {
	t.Helper()
	jar, err := javaSDKJar()
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

var javaTasks = sync.OnceValues(func() (string, error) {
	jar, err := javaSDKJar()
	if err != nil {
		return "", err
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	mu.Lock()
	if dir == "" {
		if dir, err = os.MkdirTemp("", "taskwire-bin-"); err != nil {
			mu.Unlock()
			return "", err
		}
	}
	classes := filepath.Join(dir, "javatasks")
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "javac", "-encoding", "UTF-8", "--release", "17", "-cp", jar, "-d", classes,
		filepath.Join(root, "examples", "javatasks", "Tasks.java"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("javac examples/javatasks/Tasks.java against %s: %w\n%s", jar, err, out.String())
	}
	return classes + string(os.PathListSeparator) + jar, nil
})

// JavaTasksClasspath compiles examples/javatasks against the Java SDK's jar
// once per test process (as README's Java section does) and returns the
// class path that runs it: `java -cp CLASSPATH Tasks`.
func JavaTasksClasspath(t testing.TB) string {
	t.Helper()
	cp, err := javaTasks()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}
