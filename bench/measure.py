"""Wall time, CPU time and peak memory of a command and every process it starts."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_EVERY_S = 0.05


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float  # user + system of the command and every process it started
    peak_rss_mb: float  # the largest sum of RSS over the whole process tree at one moment
    peak_tree: list[tuple[str, float]]  # the processes at that moment: (command, RSS MB)
    by_pid: dict[int, tuple[float, float]]  # each process's own (CPU s, peak RSS MB)
    returncode: int
    output: str


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Measurement:
    """Runs `cmd` to its end, sampling its process tree. CPU is the sum of each process's own
    user and system time as last sampled (at most one sampling interval short per process):
    a server such as multiprocessing's forkserver is never waited for, so the kernel's
    accounting of waited-for children, used as a floor, would miss it and all it forked.
    Memory is the largest sum of the tree's RSS at one moment."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        peak, peak_tree, cpu_by_pid, rss_by_pid = _sample_tree(proc)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(waited, sum(cpu_by_pid.values()))
    by_pid = {pid: (cpu_by_pid[pid], rss_by_pid[pid] / 2**20) for pid in cpu_by_pid}
    return Measurement(wall, cpu, peak / 2**20, peak_tree, by_pid, proc.returncode, log.read_text())


def _sample_tree(proc: subprocess.Popen):
    peak, peak_tree, cpu, rss_peak = 0, [], {}, {}
    stop = threading.Event()

    def sample():
        nonlocal peak, peak_tree
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            total, members = 0, []
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            for p in tree:
                try:
                    with p.oneshot():
                        rss = p.memory_info().rss
                        times = p.cpu_times()
                        members.append((" ".join(p.cmdline()[:4])[-80:], rss / 2**20))
                    total += rss
                    cpu[p.pid] = times.user + times.system
                    rss_peak[p.pid] = max(rss, rss_peak.get(p.pid, 0))
                except psutil.Error:
                    pass  # ended between listing and reading
            if total > peak:
                peak, peak_tree = total, members
            stop.wait(SAMPLE_EVERY_S)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    proc.wait()
    stop.set()
    thread.join()
    return peak, peak_tree, cpu, rss_peak


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any MESH_ or DAGSTER_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "DAGSTER_", "BENCH_"))}
    env.update(extra)
    return env
