"""The benchmark's measurements see the whole process tree, grandchildren included."""

import sys

from bench.measure import clean_env, run_measured

# A child that holds 300 MiB and burns about a second of CPU, started by a parent that does little.
CHILD = "b = bytearray(300 * 2**20); import time; end = time.process_time() + 1.0\nwhile time.process_time() < end: pass\ntime.sleep(0.3)"
PARENT = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}], check=True)"


def test_memory_and_cpu_of_a_grandchild_are_counted(tmp_path):
    m = run_measured([sys.executable, "-c", PARENT], clean_env(), tmp_path, tmp_path / "log")
    assert m.returncode == 0, m.output
    assert m.peak_rss_mb >= 300
    assert 0.9 <= m.cpu_s <= m.wall_s + 0.5
    assert len(m.peak_tree) == 2 and max(rss for _, rss in m.peak_tree) >= 300  # parent and child


def test_each_process_has_its_own_cpu_and_peak(tmp_path):
    m = run_measured([sys.executable, "-c", PARENT], clean_env(), tmp_path, tmp_path / "log")
    assert m.returncode == 0, m.output
    assert len(m.by_pid) == 2
    (parent_cpu, parent_mb), (child_cpu, child_mb) = sorted(m.by_pid.values(), key=lambda v: v[1])
    assert child_mb >= 300 > parent_mb
    assert child_cpu >= 0.9 > parent_cpu
