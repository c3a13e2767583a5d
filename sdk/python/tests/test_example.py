"""examples/pytasks/tasks.py as the worker runs it: a separate process,
started with --comm/--logs/--codec (or the environment), against the fake
worker; and App.main's exit codes."""

import os
import subprocess
import sys
import unittest

from fakeworker import REPO_ROOT, FakeWorker

TASKS = os.path.join(REPO_ROOT, "examples", "pytasks", "tasks.py")


class ExampleTest(unittest.TestCase):
    def start(self, task, codec="msgpack", via_env=False, unix=False, **kw):
        """Run tasks.py for task against a fake worker; return (worker,
        completed process)."""
        w = FakeWorker(codec=codec, task=task, unix=unix, **kw)
        self.addCleanup(w.close)
        env = dict(os.environ)
        for k in ("TASKWIRE_COMM_ADDR", "TASKWIRE_LOGS_ADDR", "TASKWIRE_CODEC"):
            env.pop(k, None)
        args = [sys.executable, TASKS]
        if via_env:
            env.update(TASKWIRE_COMM_ADDR=w.comm_addr, TASKWIRE_LOGS_ADDR=w.logs_addr, TASKWIRE_CODEC=codec)
        else:
            args += ["--comm", w.comm_addr, "--logs", w.logs_addr, "--codec", codec]
        return w, args, env

    def run_task(self, task, **kw):
        w, args, env = self.start(task, **kw)
        p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        w.wait()
        return w, p

    def assertExit0(self, p):
        self.assertEqual(p.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (p.stdout.decode(), p.stderr.decode()))


class TestExampleTasks(ExampleTest):
    def test_noop(self):
        for codec in ("msgpack", "json"):
            with self.subTest(codec=codec):
                w, p = self.run_task("noop", codec=codec)
                self.assertExit0(p)
                self.assertEqual(w.terminal["type"], "SucceedTask")
                self.assertIsNotNone(w.find_log(lambda r: r["event"] == "nothing to do" and r["logger"] == "task"))

    def test_env_and_unix_sockets(self):
        w, p = self.run_task("push", codec="json", via_env=True, unix=True)
        self.assertExit0(p)
        self.assertEqual(w.terminal["type"], "SucceedTask")
        self.assertEqual(w.xcoms[("push", "return_value")], 42)

    def test_read_config(self):
        w, args, env = self.start("read_config")
        w.variables["greeting"] = "hello taskwire"
        w.connections["db"] = {"conn_type": "postgres", "host": "db.internal", "port": 5432, "login": "etl",
                               "password": "s3cret"}
        p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        w.wait()
        self.assertExit0(p)
        self.assertEqual(w.terminal["type"], "SucceedTask")
        self.assertEqual(w.xcoms[("read_config", "greeting")], "hello taskwire")
        r = w.find_log(lambda r: r["event"] == "read config")
        self.assertEqual((r["greeting"], r["conn_id"], r["host"], r["port"], r["login"]),
                         ("hello taskwire", "db", "db.internal", 5432, "etl"))
        self.assertNotIn("s3cret", "\n".join(w.raw_log))

    def test_read_config_without_variable_retries(self):
        w, p = self.run_task("read_config")
        self.assertExit0(p)
        self.assertEqual(w.terminal["type"], "RetryTask")
        self.assertIn("NotFound: not_found: variable greeting not found", w.terminal["reason"])

    def test_push_then_pull(self):
        w, p = self.run_task("push")
        self.assertExit0(p)
        self.assertEqual(w.terminal["type"], "SucceedTask")
        self.assertEqual(w.xcoms[("push", "value")], 42)
        self.assertEqual(w.xcoms[("push", "return_value")], 42)

        w, args, env = self.start("pull", codec="json")
        w.xcoms[("push", "value")] = 42
        p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        w.wait()
        self.assertExit0(p)
        self.assertEqual(w.terminal["type"], "SucceedTask")

        w, args, env = self.start("pull")
        w.xcoms[("push", "value")] = 41
        p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        w.wait()
        self.assertExit0(p)
        self.assertEqual((w.terminal["type"], w.terminal["state"]), ("TaskState", "failed"))
        self.assertIn("41", w.terminal["reason"])

    def test_fail(self):
        w, p = self.run_task("fail")
        self.assertExit0(p)  # the outcome was reported
        self.assertEqual(w.terminal["type"], "RetryTask")
        self.assertIn("ValueError: failing on purpose", w.terminal["reason"])
        r = w.find_log(lambda r: r["level"] == "error" and "exception" in r)
        self.assertIn("raise ValueError(\"failing on purpose\")", r["exception"])

    def test_wait_defers_then_resumes(self):
        for codec in ("msgpack", "json"):
            with self.subTest(codec=codec):
                w, p = self.run_task("wait", codec=codec, params={"seconds": 0.5})
                self.assertExit0(p)
                self.assertEqual(w.terminal, {"type": "DeferTask", "classpath": "timedelta",
                                              "trigger_kwargs": {"delta": 0.5}, "trigger_timeout": "",
                                              "next_method": "resume", "next_kwargs": None})

                w, p = self.run_task("wait", codec=codec)
                self.assertEqual(w.terminal["trigger_kwargs"], {"delta": 1})

                event = {"moment": "2026-11-22T08:00:01Z"}
                w, p = self.run_task("wait", codec=codec, next_method="resume", next_kwargs={"event": event})
                self.assertExit0(p)
                self.assertEqual(w.terminal["type"], "SucceedTask")
                self.assertEqual(w.xcoms[("wait", "return_value")], event)
                r = w.find_log(lambda r: r["event"] == "resumed")
                self.assertEqual(r["trigger_event"], event)

                w, p = self.run_task("wait", codec=codec, next_method="__fail__", next_kwargs={"error": "timed out"})
                self.assertExit0(p)
                self.assertEqual((w.terminal["type"], w.terminal["reason"]), ("RetryTask", "timed out"))

    def test_transform(self):
        w, args, env = self.start("transform", params={"from_task": "extract"})
        w.xcoms[("extract", "value")] = 21
        p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        w.wait()
        self.assertExit0(p)
        self.assertEqual(w.terminal["type"], "SucceedTask")
        self.assertEqual(w.xcoms[("transform", "return_value")], 42)

        w, p = self.run_task("transform")  # default from_task, nothing pushed
        self.assertEqual((w.terminal["type"], w.terminal["state"]), ("TaskState", "failed"))
        self.assertIn("extract", w.terminal["reason"])


class TestMainExitCodes(unittest.TestCase):
    def run_main(self, args, env_extra=None):
        env = dict(os.environ)
        for k in ("TASKWIRE_COMM_ADDR", "TASKWIRE_LOGS_ADDR", "TASKWIRE_CODEC"):
            env.pop(k, None)
        env.update(env_extra or {})
        return subprocess.run([sys.executable, TASKS] + args, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=30)

    def test_bad_arguments_exit_2(self):
        p = self.run_main([])
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"no comm address", p.stderr)
        p = self.run_main(["--comm", "127.0.0.1:1", "--codec", "xml"])
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"unknown codec", p.stderr)
        p = self.run_main(["--bogus"])
        self.assertEqual(p.returncode, 2)
        p = self.run_main(["--help"])
        self.assertEqual(p.returncode, 0)

    def test_unreachable_worker_exits_1(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        addr = "127.0.0.1:%d" % s.getsockname()[1]
        s.close()
        p = self.run_main(["--comm", addr])
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"taskwire sdk:", p.stderr)
        p = self.run_main([], {"TASKWIRE_COMM_ADDR": "/nonexistent/taskwire.sock"})
        self.assertEqual(p.returncode, 1)


if __name__ == "__main__":
    unittest.main()
