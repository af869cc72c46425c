"""`mesh` as a user runs it: real commands in a fresh home, their output, exit codes, and what
they published."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import dagster as dg
import pytest
from conftest import ROOT
from pyiceberg.exceptions import NoSuchTableError
from held import Held, mesh_env

from mesh_platform.refresh import STOPPED
from mesh_platform.storage import Catalog

MESH = str(Path(sys.executable).with_name("mesh"))
PRODUCTS = ["orders/history", "preferences/settings", "customer/profiles", "customer/insights",
            "federation/customer_360"]


def mesh(home: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "DAGSTER_"))} | {"MESH_HOME": str(home)}
    return subprocess.run([MESH, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def outcomes(out: str) -> dict[str, tuple[str, str]]:
    """Each product's end line: key -> (status, the rest of the line)."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^  (\S+/\S+)\s+(PASS|WARN|BLOCKED|ERROR|SKIP)\b\s*(.*)$", line)
        if m:
            found[m.group(1)] = (m.group(2), m.group(3))
    return found


def current_rows(home: Path, key: str) -> int:
    return int(Catalog(home).current(*key.split("/")).summary["total-records"])


def snapshots(home: Path, key: str) -> int:
    return len(Catalog(home).history(*key.split("/")))


# What each product reads, among PRODUCTS.
READS = {"customer/insights": {"orders/history", "preferences/settings"},
         "federation/customer_360": {"customer/profiles", "orders/history", "preferences/settings"}}


def in_lineage_order(keys: list[str]) -> bool:
    return all(keys.index(read) < keys.index(key) for key, reads in READS.items() if key in keys
               for read in reads if read in keys)


def run_spans(home: Path) -> dict[str, tuple[float, float]]:
    """Each location's one run: when it started and ended."""
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        return {r.dagster_run.job_name.removesuffix("_products"): (r.start_time, r.end_time)
                for r in instance.get_run_records()}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_materialize_select_keep_going_and_blocked(tmp_path):
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "400").returncode == 0

    # Everything: a start and an end line per product, each after its inputs', then the summary.
    done = mesh(home, "materialize")
    assert done.returncode == 0, done.stderr
    assert "DEBUG" not in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr
    ends = outcomes(done.stdout)
    assert sorted(ends) == sorted(PRODUCTS)
    assert in_lineage_order(list(ends))
    for key, (status, rest) in ends.items():
        assert status == "PASS", key
        assert rest.startswith(f"{current_rows(home, key):,} rows"), (key, rest)
    assert done.stdout.count("started") == 5
    assert done.stdout.rstrip().endswith("PASS=5 WARN=0 BLOCKED=0 ERROR=0 SKIP=0")
    # Each run is found as the UI finds a location's job's runs (job name and location label).
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        for location in ("orders", "preferences", "customer", "federation"):
            found = instance.get_runs(dg.RunsFilter(
                job_name=f"{location}_products", tags={".dagster/repository": f"__repository__@{location}"}))
            assert [r.status for r in found] == [dg.DagsterRunStatus.SUCCESS], location

    status = mesh(home, "status", "--json")
    assert status.returncode == 0
    rows = {f"{r['domain']}/{r['product']}": r for r in json.loads(status.stdout)}
    assert set(rows) == set(PRODUCTS)
    for key, r in rows.items():
        assert r["rows"] == current_rows(home, key)
        assert r["fresh"] is True
        evaluated, total = map(int, re.match(r"(\d+)/(\d+) passed$", r["checks"]).groups())
        assert evaluated == total > 0

    # A selection in Dagster's syntax, across locations: history and what reads it.
    done = mesh(home, "materialize", "--select", "orders/history+")
    assert done.returncode == 0, done.stderr
    ends = list(outcomes(done.stdout))  # customer's and federation's runs side by side, after orders'
    assert ends[0] == "orders/history" and sorted(ends[1:]) == ["customer/insights", "federation/customer_360"]
    assert done.stdout.rstrip().endswith("PASS=3 WARN=0 BLOCKED=0 ERROR=0 SKIP=0")
    assert (snapshots(home, "orders/history"), snapshots(home, "customer/profiles")) == (2, 1)

    # A broken domain: its product fails, what reads it is skipped, the rest still runs.
    crm = home / "landing/customer/crm_export.csv"
    good = crm.read_text()
    lines = good.splitlines(keepends=True)
    crm.write_text(lines[0] + re.sub(r'^"[^"]*",', ",", lines[1]) + "".join(lines[2:]))
    done = mesh(home, "materialize")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert {k: s for k, (s, _) in outcomes(done.stdout).items()} == {
        "orders/history": "PASS", "preferences/settings": "PASS", "customer/profiles": "ERROR",
        "customer/insights": "SKIP", "federation/customer_360": "SKIP"}
    assert f"{crm}: column 'customer_id' is required but a row has no value" in done.stdout
    assert "not run: its input customer/profiles did not publish" in done.stdout
    assert done.stdout.count("customer_id' is required") == 1  # once, not once per log handler
    assert "PASS=2 WARN=0 BLOCKED=0 ERROR=1 SKIP=2" in done.stdout
    crm.write_text(good)

    # A quarter of the customers: every domain's volume check blocks; nothing downstream runs.
    before = {key: snapshots(home, key) for key in PRODUCTS}
    assert mesh(home, "seed", "--customers", "100").returncode == 0
    done = mesh(home, "materialize")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert {k: s for k, (s, _) in outcomes(done.stdout).items()} == {
        "orders/history": "BLOCKED", "preferences/settings": "BLOCKED", "customer/profiles": "BLOCKED",
        "customer/insights": "SKIP", "federation/customer_360": "SKIP"}
    assert done.stdout.count("not published, blocking checks failed; the previous snapshot stays current") == 3
    assert "PASS=0 WARN=0 BLOCKED=3 ERROR=0 SKIP=2" in done.stdout
    assert {key: snapshots(home, key) for key in PRODUCTS} == before


@pytest.mark.parametrize("budget", ["", "1000"])
def test_independent_locations_run_side_by_side_when_their_landing_fits_a_step(tmp_path, budget):
    """Without a UI, the runs of locations that read nothing of each other's (orders,
    preferences, customer's profiles) go side by side when their landing data fit one step's
    budget (MESH_BUCKET_BYTES here); a location reading them (federation) after all three. With a
    budget below their landing data, one at a time. Either way the same rows are published."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "300").returncode == 0
    env = mesh_env(home) | ({"MESH_BUCKET_BYTES": budget} if budget else {})
    select = "key:orders/history or key:preferences/settings or key:customer/profiles or key:federation/customer_360"
    done = subprocess.run([MESH, "materialize", "--select", select], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    ends = outcomes(done.stdout)
    assert {k: s for k, (s, _) in ends.items()} == {k: "PASS" for k in PRODUCTS if k != "customer/insights"}
    assert list(ends)[-1] == "federation/customer_360"
    for key, (_, rest) in ends.items():
        assert rest.startswith(f"{current_rows(home, key):,} rows"), (key, rest)

    spans = run_spans(home)
    assert sorted(spans) == ["customer", "federation", "orders", "preferences"]
    domains = [spans["orders"], spans["preferences"], spans["customer"]]
    pairs = [(a, b) for i, a in enumerate(domains) for b in domains[i + 1:]]
    assert all(overlap(a, b) for a, b in pairs) == (budget == "")
    assert any(overlap(a, b) for a, b in pairs) == (budget == "")
    assert spans["federation"][0] >= max(end for _, end in domains)


# SIGTERM kills the parent as SIGKILL does (it has no handler for it): the same kernel signal
# stops the forks, so SIGKILL stands for both.
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_side_by_side_runs_end_with_the_refresh_however_it_is_stopped(tmp_path, signal_name):
    """A refresh whose side-by-side runs are held at their compute is stopped by a signal to its
    own process only (as `kill` sends it). A SIGINT is passed on to both runs and reported as
    the refresh reports a stopped run; after SIGKILL the kernel stops both forks.
    Either way no process of the refresh is left, no run stays STARTED, nothing is published,
    and the next refresh publishes both products."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "300").returncode == 0
    held = Held(home, tmp_path, "materialize", "orders", "preferences")
    forks = set()
    deadline = time.monotonic() + 60
    while len(forks) < 2:  # both runs under way: each fork holds at its compute
        forks = {int(p) for p in subprocess.run(["pgrep", "-P", str(held.proc.pid)], capture_output=True,
                                                text=True).stdout.split()}
        assert time.monotonic() < deadline, "the refresh did not start two runs side by side"
        time.sleep(0.1)
    held.proc.send_signal(getattr(signal, signal_name))
    out, _ = held.proc.communicate(timeout=120)

    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in forks):
        assert time.monotonic() < deadline, f"forks left after {signal_name}: {forks}"
        time.sleep(0.1)
    if signal_name == "SIGINT":
        assert held.proc.returncode == 1, out
        assert "Traceback" not in out
        assert {k: s for k, (s, _) in outcomes(out).items()} == {"orders/history": "ERROR", "preferences/settings": "ERROR"}
        # Each says it was stopped, not Dagster's bare exception class, right under its own line
        # (the two forks print at once).
        lines = out.splitlines()
        for key in ("orders/history", "preferences/settings"):
            at = next(i for i, line in enumerate(lines) if re.match(rf"  {key} +ERROR", line))
            assert lines[at + 1] == f"    {STOPPED}", out
        assert "DagsterExecutionInterruptedError" not in out
        assert "PASS=0 WARN=0 BLOCKED=0 ERROR=2 SKIP=0" in out
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        ended = {r.job_name: r.status for r in instance.get_runs()}
    assert ended == {"orders_products": dg.DagsterRunStatus.FAILURE, "preferences_products": dg.DagsterRunStatus.FAILURE}
    for key in ("orders/history", "preferences/settings"):  # nothing published: not even a table
        with pytest.raises(NoSuchTableError):
            snapshots(home, key)

    done = mesh(home, "materialize", "orders", "preferences")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (snapshots(home, "orders/history"), snapshots(home, "preferences/settings")) == (1, 1)


def test_a_side_by_side_run_whose_process_is_killed_fails_at_once_and_the_others_go_on(tmp_path):
    """One of two side-by-side runs held at their compute has its process killed (SIGKILL, as the
    kernel's out-of-memory killer does). The other run goes on and publishes; the killed one's
    product is reported as an error naming the signal, nothing of it is published, and its run
    is marked FAILURE by the time the refresh ends, not left STARTED for the UI to show."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "300").returncode == 0
    held = Held(home, tmp_path, "materialize", "orders", "preferences")
    workers: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while len(workers) < 2:  # both runs started: the pid of each one's process, from its RUN_START
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            for run in instance.get_runs():
                start = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_START).records
                if start:
                    workers[run.job_name] = start[0].event_log_entry.dagster_event.pid
        assert time.monotonic() < deadline, f"the refresh did not start two runs side by side: {workers}"
        time.sleep(0.1)
    assert workers["orders_products"] != held.proc.pid  # a fork, not the refresh's own process
    os.kill(workers["orders_products"], signal.SIGKILL)
    code, out = held.release()

    assert code == 1, out
    assert "Traceback" not in out
    ends = outcomes(out)
    assert ends["preferences/settings"][0] == "PASS", out
    assert ends["orders/history"][0] == "ERROR", out
    assert "the run of orders failed: its process ended without a result (killed by SIGKILL)" in out
    assert "PASS=1 WARN=0 BLOCKED=0 ERROR=1 SKIP=0" in out
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        ended = {r.job_name: r.status for r in instance.get_runs()}
    assert ended == {"orders_products": dg.DagsterRunStatus.FAILURE, "preferences_products": dg.DagsterRunStatus.SUCCESS}
    with pytest.raises(NoSuchTableError):
        snapshots(home, "orders/history")
    assert snapshots(home, "preferences/settings") == 1


def test_a_product_already_being_built_is_followed_not_built_twice(tmp_path):
    """A second `mesh materialize` while a first one's run is building orders/history (held at
    its compute by a fault point) follows that run to its end instead of starting another."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "300").returncode == 0
    first = Held(home, tmp_path, "materialize", "orders")
    second = subprocess.Popen([MESH, "materialize", "orders"], env=mesh_env(home), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    note = second.stdout.readline()
    assert re.match(r"^  orders/history: already being built by run \w{8} \(mesh-cli\); following it$", note), note
    assert second.poll() is None  # waiting for the held run

    code, out = first.release()
    assert code == 0, out
    rest, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "Traceback" not in rest + err
    status, detail = outcomes(rest)["orders/history"]
    assert status == "PASS" and detail.startswith(f"{current_rows(home, 'orders/history'):,} rows"), detail
    assert rest.rstrip().endswith("PASS=1 WARN=0 BLOCKED=0 ERROR=0 SKIP=0")
    # One run, one published version.
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert len(instance.get_runs(dg.RunsFilter(job_name="orders_products"))) == 1
    assert snapshots(home, "orders/history") == 1


def test_a_product_built_since_the_refresh_began_is_not_built_again(tmp_path):
    """While a refresh of orders and preferences is held at orders/history's compute, another
    `mesh materialize preferences` builds preferences/settings: the refresh, once released,
    reports that run's outcome for it instead of building it a second time."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "300").returncode == 0
    # A budget below the landing data: the refresh's runs go one at a time, orders first.
    refresh = Held(home, tmp_path, "materialize", "orders", "preferences", MESH_BUCKET_BYTES="1000")
    other = mesh(home, "materialize", "preferences")
    assert other.returncode == 0, other.stdout + other.stderr

    code, out = refresh.release()
    assert code == 0, out
    assert re.search(r"^  preferences/settings: built by run \w{8} \(mesh-cli\) since this refresh began$", out, re.M), out
    assert {k: s for k, (s, _) in outcomes(out).items()} == {"orders/history": "PASS", "preferences/settings": "PASS"}
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert len(instance.get_runs(dg.RunsFilter(job_name="preferences_products"))) == 1
    assert snapshots(home, "preferences/settings") == 1


def test_a_run_whose_worker_was_killed_is_not_followed(tmp_path):
    """The run building orders/history is killed (SIGKILL, at its compute): it stays STARTED in
    the instance, but `mesh materialize` marks it failed and builds the product itself."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "300").returncode == 0
    held = Held(home, tmp_path, "materialize", "orders")
    held.proc.kill()
    held.proc.wait(timeout=30)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [dead] = instance.get_runs(dg.RunsFilter(job_name="orders_products"))
        assert dead.status == dg.DagsterRunStatus.STARTED

    done = mesh(home, "materialize", "orders")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "following it" not in done.stdout
    assert outcomes(done.stdout)["orders/history"][0] == "PASS"
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert snapshots(home, "orders/history") == 1


def test_only_the_console_script_freezes_what_its_refresh_loaded(tmp_path):
    """`mesh` (the script) keeps what it loaded out of the collector's sight before each run;
    `main` called by a process that goes on (a test session, a notebook) leaves its collector
    alone: cyclic garbage frozen there would never be freed."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "200").returncode == 0
    env = mesh_env(home)
    frozen, thresholds = {}, {}
    for caller in ("entry", "main"):
        script = (
            "import gc, sys\n"
            "from mesh_platform import cli\n"
            "sys.argv = ['mesh', 'materialize', '--select', 'key:customer/profiles']\n"
            f"code = cli.{caller}()\n"
            "print(code, gc.get_freeze_count(), *gc.get_threshold())\n"
        )
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        code, count, *threshold = done.stdout.splitlines()[-1].split()
        assert code == "0", done.stdout
        frozen[caller] = int(count)
        thresholds[caller] = tuple(map(int, threshold))
    assert frozen["main"] == 0
    # The script's collector also runs less often; `main` leaves Python's defaults.
    assert thresholds == {"entry": (10_000, 20, 100), "main": (700, 10, 10)}
    # Dagster, the locations and the instance alone are hundreds of thousands of objects.
    assert frozen["entry"] > 100_000, frozen
    assert snapshots(home, "customer/profiles") == 2


def test_a_refresh_loads_each_location_once_and_a_later_load_is_fresh(tmp_path):
    """The selection and every run's job share one load of each location's definitions; once
    the command returns, loading reads the files again (a process that goes on sees changes)."""
    home = tmp_path / "home"
    assert mesh(home, "seed", "--customers", "200").returncode == 0
    script = (
        "import collections, importlib.util, json\n"
        "loads = collections.Counter()\n"
        "real = importlib.util.spec_from_file_location\n"
        "def counted(name, *args, **kwargs):\n"
        "    if name.startswith('mesh_location_'):\n"
        "        loads[name] += 1\n"
        "    return real(name, *args, **kwargs)\n"
        "importlib.util.spec_from_file_location = counted\n"
        "from mesh_platform import cli\n"
        "from mesh_platform.workspace import locations\n"
        "code = cli.main(['materialize', '--select', 'key:customer/profiles or key:preferences/settings'])\n"
        "during = dict(loads)\n"
        "customer = locations()['customer']\n"
        "fresh = customer.definitions() is not customer.definitions()\n"
        "print(json.dumps([code, during, loads['mesh_location_customer'], fresh]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=mesh_env(home), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    code, during, customer_after, fresh = json.loads(done.stdout.splitlines()[-1])
    assert code == 0, done.stdout
    # The selection reads every location's products; the two runs reuse what it loaded.
    assert during == {f"mesh_location_{n}": 1 for n in ("customer", "orders", "preferences", "federation")}
    assert customer_after == 3 and fresh
    assert snapshots(home, "customer/profiles") == 1 and snapshots(home, "preferences/settings") == 1


def test_a_misspelt_location_gets_a_suggestion(tmp_path):
    done = mesh(tmp_path, "run", "custmer")
    assert done.returncode == 2
    assert done.stderr.strip() == "mesh: no code location 'custmer'; did you mean 'customer'?"


def test_a_selection_of_nothing_names_the_products(tmp_path):
    done = mesh(tmp_path, "materialize", "--select", "key:orders/nothing")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "mesh: --select 'key:orders/nothing' selects no product; the products are: customer/insights, "
        "customer/profiles, federation/customer_360, orders/history, preferences/settings")
    bad = mesh(tmp_path, "materialize", "--select", 'key:"open')
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("mesh: --select 'key:\"open': ")


def test_bad_seed_arguments_are_one_line(tmp_path):
    done = mesh(tmp_path, "seed", "--customers", "-5")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("mesh seed: --customers")


def test_version_and_defaults_in_help(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert mesh(tmp_path, "--version").stdout.strip() == f"mesh {project['version']}"
    seed_help = mesh(tmp_path, "seed", "--help").stdout
    assert "(default: 10000)" in seed_help and "(default: 7)" in seed_help
    assert "(default: 5)" in mesh(tmp_path, "maintain", "--help").stdout


@pytest.mark.parametrize("where", ["domains/customer", "mesh_platform/federation/contracts"])
def test_runs_from_any_directory_of_the_checkout(tmp_path, where):
    """The workspace, and without MESH_HOME the checkout's own .mesh, whatever the directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "DAGSTER_"))}

    def status(cwd: Path) -> list[dict]:
        done = subprocess.run([MESH, "status", "--json"], env=env, cwd=cwd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    here = status(ROOT / where)
    assert {f"{r['domain']}/{r['product']}" for r in here} == set(PRODUCTS)
    assert here == status(ROOT)  # the same home: the checkout's .mesh
    assert not (ROOT / where / ".mesh").exists()


def test_ui_on_a_port_in_use_is_one_clear_line(tmp_path):
    """dagster dev would keep running without its webserver: mesh ui refuses first."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = mesh(tmp_path / "home", "ui", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr == f"mesh ui: port {port} on 127.0.0.1 is in use; choose another with --port\n"
    assert not (tmp_path / "home" / "dagster" / "ui.json").exists()
