"""`mesh seed` replaces the landing data atomically, checked with real processes killed by real
signals at several points: every dataset is always either the previous seed's or a complete
new seed's, byte for byte, and the next seed cleans up what a killed one left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from mesh_platform import seed
from mesh_platform.seed import SeedLockedError, check_arguments, generate_landing, replace_whole

REPO = Path(__file__).resolve().parents[2]
CRM = seed.CRM_FILE
FOLDERS = list(seed.PART_FOLDERS.values())
DATASETS = [CRM, *FOLDERS]
CHUNK = 50_000  # more parts per second of run time than the default 100k
PREVIOUS = (30_000, 3)  # (customers, seed) of the seed already in the landing folder: 1 part
NEW = (150_000, 5)  # the seed that gets killed: 3 parts per folder, about 2 s here
STEP = 0.0005  # polling interval, seconds


def generate(root: Path, customers: int, seed_: int) -> dict[str, int]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(seed, "CHUNK", CHUNK)
        return generate_landing(root, customers, seed_)


def state(root: Path, dataset: str) -> dict[str, str] | None:
    """{file name: sha256} of a dataset (one entry for the CSV), None if it is missing."""
    path = root / dataset
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(path.iterdir())
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def states(root: Path) -> dict[str, dict[str, str] | None]:
    return {dataset: state(root, dataset) for dataset in DATASETS}


def visible_files(root: Path) -> set[str]:
    """Every file under root that is not the lock or inside a root-level staging folder."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] != seed.LOCK_FILE
            and not p.relative_to(root).parts[0].startswith(seed.STAGING_PREFIX)}


def rows_in(landing: Path) -> int:
    """Rows of the landing CSV, read to the end with the contract's column types."""
    columns = {"customer_id": "VARCHAR", "first_name": "VARCHAR", "last_name": "VARCHAR",
               "email": "VARCHAR", "country": "VARCHAR", "segment": "VARCHAR",
               "signup_date": "DATE", "updated_at": "TIMESTAMP"}
    with duckdb.connect() as con:
        return con.execute(f"SELECT count(*) FROM read_csv('{landing / CRM}', header=true, "
                           f"columns={columns!r})").fetchone()[0]


def staging(root: Path) -> list[Path]:
    return sorted(root.glob(f"{seed.STAGING_PREFIX}*"))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """The previous seed (a landing folder to copy for each run) and a complete new seed with
    the checksums and row counts each dataset must then have."""
    base = tmp_path_factory.mktemp("seeds")
    previous_counts = generate(base / "previous", *PREVIOUS)
    new_counts = generate(base / "new", *NEW)
    return {
        "previous": base / "previous",
        "old": (states(base / "previous"), previous_counts["crm_export"]),
        "new": (states(base / "new"), new_counts["crm_export"]),
    }


def start_seed(landing: Path, customers: int, seed_: int) -> subprocess.Popen:
    """generate_landing in a process of its own. seed.py is loaded by file: importing the
    mesh_platform package would load Dagster first (over a second per process) and the
    kill points would mostly wait for that."""
    code = "; ".join([
        # Ctrl-C's handler as in an interactive shell (a background shell leaves SIGINT ignored),
        # and SIGTERM's default, unblocked, whatever the test process passed down (a library it
        # loaded may ignore or block it).
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)",
        "signal.signal(signal.SIGTERM, signal.SIG_DFL)",
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT, signal.SIGTERM])",
        "import importlib.util, sys; from pathlib import Path",
        "spec = importlib.util.spec_from_file_location('seed', sys.argv[1])",
        "seed = importlib.util.module_from_spec(spec); spec.loader.exec_module(seed)",
        f"seed.CHUNK = {CHUNK}; seed.generate_landing(Path(sys.argv[2]), {customers}, {seed_})",
    ])
    return subprocess.Popen([sys.executable, "-c", code, seed.__file__, str(landing)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"seed ended before the kill point:\n{proc.stdout.read().decode()}"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(STEP)


def parts_staged(landing: Path, n: int) -> Callable[[], bool]:
    """True once the running seed has begun writing its n-th orders part in its staging folder."""
    def ready() -> bool:
        return any(len(list((s / "new" / FOLDERS[0]).glob("*"))) >= n
                   for s in staging(landing) if (s / "new" / FOLDERS[0]).is_dir())
    return ready


def installing(landing: Path) -> Callable[[], bool]:
    """True once the CSV (installed first) has been replaced: the install step has begun."""
    inode = (landing / CRM).stat().st_ino
    return lambda: (landing / CRM).stat().st_ino != inode


def started(landing: Path) -> Callable[[], bool]:
    return lambda: bool(staging(landing))


def after(seconds: float) -> Callable[[], bool]:
    """A fixed delay: 0.15 s is while the interpreter still imports numpy and pyarrow."""
    until = time.monotonic() + seconds
    return lambda: time.monotonic() >= until


# (signal, kill point): 5 SIGKILL, 3 SIGTERM, 3 SIGINT.
KILLS = [
    ("SIGKILL", "after 0.15s"), ("SIGKILL", "staging created"), ("SIGKILL", "1 part staged"),
    ("SIGKILL", "2 parts staged"), ("SIGKILL", "install begun"),
    ("SIGTERM", "staging created"), ("SIGTERM", "2 parts staged"), ("SIGTERM", "install begun"),
    ("SIGINT", "1 part staged"), ("SIGINT", "2 parts staged"), ("SIGINT", "install begun"),
]


@pytest.mark.parametrize(("signame", "point"), KILLS, ids=[f"{s}-{p.replace(' ', '_')}" for s, p in KILLS])
def test_killed_seed_leaves_each_dataset_old_or_new_and_whole(seeds, tmp_path, signame, point):
    old, old_crm_rows = seeds["old"]
    new, new_crm_rows = seeds["new"]
    sig = getattr(signal, signame)
    for attempt in range(3):
        landing = tmp_path / f"landing-{attempt}"
        shutil.copytree(seeds["previous"], landing)
        ready = {
            "after 0.15s": lambda: after(0.15),
            "staging created": lambda: started(landing),
            "1 part staged": lambda: parts_staged(landing, 1),
            "2 parts staged": lambda: parts_staged(landing, 2),
            "install begun": lambda: installing(landing),
        }[point]()
        proc = start_seed(landing, *NEW)
        try:
            wait_for(proc, ready)
            proc.send_signal(sig)
            out = proc.communicate(timeout=60)[0].decode()
        finally:
            proc.kill()
        # On a loaded machine the seed may finish between the kill point and the signal: that
        # run tells nothing about a kill there, so it is tried again.
        if proc.returncode != 0 or point == "install begun":
            break
    # Killed (SIGINT ends Python with KeyboardInterrupt, re-raised as the signal), or, for a
    # signal sent once the install has begun, possibly finished before it arrived.
    assert proc.returncode == -sig or (point == "install begun" and proc.returncode == 0), out

    now = states(landing)
    for dataset in DATASETS:
        assert now[dataset] in (old[dataset], new[dataset]), f"{dataset} is neither old nor new"
    if point != "install begun":  # killed while generating: nothing was touched
        assert now == old
    elif sig != signal.SIGKILL:  # held until the install (and clean-up) is done
        assert now == new and staging(landing) == []
    # Nothing but whole datasets is visible: no staging file inside a dataset folder.
    expected = {str(Path(d) / name) if d != CRM else d for d in DATASETS for name in now[d]}
    assert visible_files(landing) == expected
    # The CSV parses completely, with the row count of the seed it comes from.
    assert rows_in(landing) == (new_crm_rows if now[CRM] == new[CRM] else old_crm_rows)
    # A seed removes its own staging folder on Ctrl-C; a killed one leaves it to the next.
    if sig == signal.SIGINT:
        assert staging(landing) == []
    elif point not in ("after 0.15s", "install begun"):
        assert staging(landing)

    # The next seed runs (the dead seed's lock went with it) and removes the leftovers.
    counts = generate(landing, 10, 1)
    assert staging(landing) == []
    assert rows_in(landing) == counts["crm_export"]


def test_next_seed_after_a_kill_completes_and_readers_only_see_whole_datasets(seeds, tmp_path):
    """A killed seed's leftovers, then a full seed in its own process while this one keeps
    listing the dataset folders: each listing is the old or the new set of parts, never a mix,
    and the result is byte-identical to an uninterrupted seed."""
    landing = tmp_path / "landing"
    shutil.copytree(seeds["previous"], landing)
    old, new = seeds["old"][0], seeds["new"][0]
    proc = start_seed(landing, *NEW)
    wait_for(proc, parts_staged(landing, 2))
    proc.kill()
    proc.communicate(timeout=20)
    leftovers = staging(landing)
    assert len(leftovers) == 1

    seen: dict[str, set[tuple[str, ...]]] = {d: set() for d in FOLDERS}
    sizes: set[int] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for folder in FOLDERS:
                seen[folder].add(tuple(sorted(os.listdir(landing / folder))))
            sizes.add((landing / CRM).stat().st_size)
            time.sleep(0.0005)  # leave the seed a core

    reader = threading.Thread(target=read)
    reader.start()
    try:
        proc = start_seed(landing, *NEW)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        done.set()
        reader.join()
    assert proc.returncode == 0, out
    assert states(landing) == new
    assert not leftovers[0].exists() and staging(landing) == []
    for folder in FOLDERS:
        assert seen[folder] <= {tuple(sorted(old[folder])), tuple(sorted(new[folder]))}
        assert len(seen[folder]) == 2, "the reader saw the folder before and after the swap"
    assert sizes <= {(seeds["previous"] / CRM).stat().st_size, (landing / CRM).stat().st_size}


def test_a_second_seed_fails_while_one_holds_the_lock(tmp_path):
    """The lock is taken by another process (as a running seed holds it): a seed then fails
    fast and touches nothing, not even what looks like a leftover staging folder."""
    landing = tmp_path / "landing"
    generate(landing, 100, 1)
    before = states(landing)
    busy = landing / f"{seed.STAGING_PREFIX}in-use"
    (busy / "new").mkdir(parents=True)
    (busy / "new" / "part.parquet").write_bytes(b"being written")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
         str(landing / seed.LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SeedLockedError, match="another seed is writing into"):
            generate(landing, 200, 2)
        assert states(landing) == before and busy.exists()
    finally:
        holder.kill()
        holder.communicate()
    counts = generate(landing, 200, 2)  # the lock died with its holder
    assert not busy.exists() and rows_in(landing) == counts["crm_export"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_replace_whole_swaps_whole_folders(tmp_path, exchange):
    target, new, aside = tmp_path / "data" / "parts", tmp_path / "stage" / "parts", tmp_path / "old"
    new.mkdir(parents=True)
    (new / "part-00000.parquet").write_text("new 0")
    (new / "part-00001.parquet").write_text("new 1")
    replace_whole(new, target, aside, exchange)  # no target yet: a plain rename
    assert sorted(p.name for p in target.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert not new.exists()

    new.mkdir()
    (new / "part-00000.parquet").write_text("newer 0")
    replace_whole(new, target, aside, exchange)
    assert {p.name: p.read_text() for p in target.iterdir()} == {"part-00000.parquet": "newer 0"}
    # The old parts are whole in one place: swapped into `new`, or renamed to `aside`.
    old_place, empty = (new, aside) if exchange else (aside, new)
    assert sorted(p.name for p in old_place.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert not empty.exists()


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-over"])
def test_replace_whole_replaces_a_file(tmp_path, exchange):
    target, new, aside = tmp_path / "data.csv", tmp_path / "stage" / "data.csv", tmp_path / "old.csv"
    target.write_text("old\n")
    new.parent.mkdir()
    new.write_text("new\n")
    inode = new.stat().st_ino
    replace_whole(new, target, aside, exchange)
    assert target.read_text() == "new\n" and target.stat().st_ino == inode
    # Exchanged: the old file is kept at `new`, and freed later, outside the install.
    assert (new.read_text() == "old\n") if exchange else not new.exists()
    assert not aside.exists()


@pytest.mark.parametrize(("customers", "seed_", "message"), [
    (0, 7, "--customers must be at least 1, got 0"),
    (-5, 7, "--customers must be at least 1, got -5"),
    (2.5, 7, "--customers must be an integer of at least 1, got 2.5"),
    ("10", 7, "--customers must be an integer of at least 1, got '10'"),
    (10, -1, "--seed must be a non-negative integer, got -1"),
    (10, 1.0, "--seed must be a non-negative integer, got 1.0"),
    (10, True, "--seed must be a non-negative integer, got True"),
    (10, None, "--seed must be a non-negative integer, got None"),
])
def test_invalid_arguments_are_refused_before_anything_is_written(tmp_path, customers, seed_, message):
    for call in (lambda: check_arguments(customers, seed_),
                 lambda: generate_landing(tmp_path / "landing", customers, seed_)):
        with pytest.raises(ValueError) as raised:
            call()
        assert str(raised.value) == message
    assert not (tmp_path / "landing").exists()


def test_seed_zero_and_numpy_integers_are_valid(tmp_path):
    import numpy as np

    assert generate_landing(tmp_path / "a", np.int64(50), 0) == generate_landing(tmp_path / "b", 50, np.int32(0))
