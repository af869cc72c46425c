"""`mesh`: seed landing data, materialize every product, show their status, start the UI."""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from mesh_platform.deployment import Settings

class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help shows its default."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def entry() -> int:
    """The `mesh` console script: `main` in a process that ends with its command."""
    from mesh_platform import short_process

    short_process.enable()
    return main()


def main(argv: list[str] | None = None) -> int:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="mesh", description=__doc__, formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"mesh {version('mesh')}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    seed = sub.add_parser("seed", help="generate deterministic landing data for the three domains")
    seed.add_argument("--customers", type=int, default=10_000, help="customers to generate (orders and preferences "
                      "follow from them)")
    seed.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same files")
    mat = sub.add_parser("materialize", help="run the products through real Dagster runs, a run per code location "
                         "in lineage order (launched through the UI while `mesh ui` runs); a failure skips only "
                         "what reads it")
    mat.add_argument("locations", nargs="*", help="code locations (default: all of them)")
    mat.add_argument("--select", metavar="SELECTION",
                     help="only these products, in Dagster's asset selection syntax (as the UI's search takes it): "
                     "'customer/profiles+', 'group:orders', 'not key:customer/insights' (default: every product)")
    run = sub.add_parser("run", help="materialize one code location (mesh materialize LOCATION)")
    run.add_argument("location", help="the code location")
    for p in (mat, run):
        p.add_argument("-v", "--verbose", action="store_true",
                       help="show Dagster's own log of each run (of a run launched through the UI: its page)")
        p.add_argument(
            "--in-process", action="store_true",
            help="run every step in the run's process (default: a process per step, as the UI runs it)",
        )
        p.add_argument(
            "--allow-volume-drop", action="store_true",
            help="publish even when a product's row count fell more than its contract's volume check allows",
        )
    maintain = sub.add_parser("maintain", help="expire old snapshots and remove orphan files (what a failed or "
                              "interrupted publish left behind)")
    maintain.add_argument("--keep", type=int, default=5, help="published versions kept per product (default: 5)")
    maintain.add_argument("--min-age-hours", type=float, default=7 * 24,
                          help="snapshots younger than this are kept too (default: 168)")
    maintain.add_argument("--older-than-hours", type=float, default=24,
                          help="orphan files younger than this are kept: a publish in progress may be about to "
                          "commit them (default: 24)")
    maintain.add_argument("--dry-run", action="store_true", help="report what would be removed, remove nothing")
    check = sub.add_parser("check", help="load every code location and check every contract against the platform's "
                           "policies and its published version; non-zero exit on a violation")
    check.add_argument("--base", metavar="REF", help="also compare every product contract with its version at this "
                       "git ref: breaking changes need a new major version that breaks no consumer")
    contract = sub.add_parser("contract", help="product contracts: compare versions")
    contract_sub = contract.add_subparsers(dest="contract_command", required=True)
    cdiff = contract_sub.add_parser(
        "diff", help="each product contract against its published version (or --base REF): every change, breaking "
        "or not, and the consumers breaking changes break; exit 1 when a breaking change lacks a major version bump "
        "or a major bump breaks a consumer")
    cdiff.add_argument("contracts", nargs="*", help="contract files (default: every product contract of the workspace)")
    cdiff.add_argument("--base", metavar="REF", help="compare with the contract at this git ref (git show REF:path) "
                       "instead of the published version")
    cdiff.add_argument("--workspace", metavar="FILE", help="the workspace.yaml whose products are the consumers "
                       "(default: this project's)")
    cdiff.add_argument("--json", action="store_true", help="a JSON array instead of text")
    audit = sub.add_parser("audit", help="the audit trail: grants, reads, denials, publishes, maintenance")
    audit.add_argument("what", nargs="?", choices=["list", "verify"], default="list",
                       help="list entries (default) or verify the hash chain")
    audit.add_argument("--product", help="only entries about this product (domain/name)")
    audit.add_argument("--location", help="only entries by this code location (the reader or writer)")
    audit.add_argument("--action", help="only entries of this action (read, read_denied, publish, grant, ...)")
    audit.add_argument("--since", help="only entries at or after this ISO date or time (UTC)")
    audit.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    grants = sub.add_parser("grants", help="who may read which product, as the catalog enforces it")
    grants.add_argument("what", nargs="?", choices=["list", "apply"], default="list",
                        help="list the grants (default), or apply every contract's grants to the catalog")
    infra = sub.add_parser("infra", help="the prod environment's cloud resources, derived from the contracts and "
                           "the deployment file: plan shows what differs, apply makes it so (MESH_ENV=prod)")
    infra.add_argument("what", choices=["plan", "apply"])
    infra.add_argument("--cloud", action="append", choices=["aws", "gcp", "azure"],
                       help="only this cloud (repeatable; default: every cloud whose module is installed)")
    infra.add_argument("--detailed-exitcode", action="store_true",
                       help="plan: exit 2 when something would change, 0 when nothing would")
    new = sub.add_parser("new", help="scaffold a data product (contract, function, test) or a domain")
    new_sub = new.add_subparsers(dest="new_command", required=True, parser_class=_Parser)
    new_product = new_sub.add_parser("product", help="a product in its domain's folder, passing the platform's "
                                     "policies and materializing as written")
    new_product.add_argument("key", metavar="DOMAIN/NAME", help="the new product, e.g. orders/daily_revenue")
    start_from = new_product.add_mutually_exclusive_group(required=True)
    start_from.add_argument("--from-source", metavar="SOURCE", help="built from this landing source of the domain "
                            "(its columns to begin with)")
    start_from.add_argument("--inputs", metavar="KEY,...", help="built from these products (the first one's "
                            "columns to begin with)")
    new_domain = new_sub.add_parser("domain", help="a code location: domains/NAME and its workspace entries")
    new_domain.add_argument("name", help="the domain, snake_case")
    status = sub.add_parser("status", help="every product's published version, freshness and latest checks")
    status.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    ui = sub.add_parser("ui", help="start the Dagster UI on 127.0.0.1 (dagster dev: its code servers and daemon); "
                        "while it runs, `mesh materialize` launches through it")
    ui.add_argument("--port", type=int, default=3000, help="port on 127.0.0.1")
    ui.add_argument("--materialize", action="store_true",
                    help="once the UI is up, materialize every product through it and show their status")
    ui.add_argument("--allow-volume-drop", action="store_true", help="with --materialize: as for materialize")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return {
        "seed": lambda: _seed(settings, args.customers, args.seed),
        "materialize": lambda: _stoppable(args.locations, args.in_process, _tags(args), args.select, args.verbose),
        "run": lambda: _stoppable([args.location], args.in_process, _tags(args), None, args.verbose),
        "maintain": lambda: _maintain(settings, args),
        "status": lambda: _status(settings, args.json),
        "new": lambda: _new(args),
        "check": lambda: _check(args.base),
        "contract": lambda: _contract(settings, args),
        "audit": lambda: _audit(settings, args),
        "grants": lambda: _grants(settings, args.what),
        "infra": lambda: _infra(settings, args.what, args.cloud, args.detailed_exitcode),
        "ui": lambda: _ui(settings, args.port, args.materialize, _tags(args)),
    }[args.command]()


def _seed(settings: Settings, customers: int, seed: int) -> int:
    from mesh_platform.seed import SeedLockedError, check_arguments, generate_landing

    try:
        check_arguments(customers, seed)
    except ValueError as exc:
        print(f"mesh seed: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()

    def progress(dataset: str, done: int, total: int) -> None:
        print(f"\r  {dataset:<18} {done:>10,}/{total:,} customers", end="", flush=True)
        if done == total:
            print()

    print(f"seeding {customers:,} customers (seed {seed}) into {settings.landing}")
    try:
        counts = generate_landing(settings.landing, customers, seed, progress)
    except SeedLockedError as exc:
        print(f"mesh seed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmesh seed: interrupted; the landing data was left whole "
              "(the previous seed's, unless this one had reached its final install)", file=sys.stderr)
        return 130
    for dataset, rows in counts.items():
        print(f"  {dataset:<18} {rows:>12,} rows")
    print(f"seeded in {time.perf_counter() - start:.1f}s")
    return 0


def _new(args) -> int:
    from mesh_platform import scaffold

    try:
        if args.new_command == "domain":
            written = scaffold.new_domain(args.name)
            steps = [f"add its products: mesh new product {args.name}/NAME --from-source SOURCE "
                     f"(a source contract in domains/{args.name}/sources first)"]
        else:
            inputs = [i.strip() for i in (args.inputs or "").split(",") if i.strip()]
            written = scaffold.new_product(args.key, args.from_source, inputs)
            steps = ["fill in the contract's purpose, columns and rules, and the function's SQL",
                     *(f"ask for read access: {line}" for line in scaffold.ungranted(args.key, inputs)),
                     f"run its test: .venv/bin/python -m pytest {written[-1]}"]
    except (scaffold.ScaffoldError, ValueError) as exc:
        print(f"mesh new: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"  wrote {path}")
    for step in steps:
        print(f"next: {step}")
    return 0


def _contract(settings: Settings, args) -> int:
    from mesh_platform.contract_report import diff_command

    return diff_command(args.contracts, args.base, settings.home, args.json, args.workspace)


def _check(base: str | None = None) -> int:
    """Every location loaded as its code server would (contracts, inputs, grants, policies, the
    published contract versions); with `base`, every contract against that git ref too."""
    from mesh_platform import policies
    from mesh_platform.location import location_contracts
    from mesh_platform.workspace import locations

    failed = 0
    for name, loc in locations().items():
        try:
            loc.definitions()
        except (ValueError, OSError) as exc:  # ContractError, PolicyError: they name file and field
            failed += 1
            print(f"{name}: does not load:\n  " + str(exc).replace("\n", "\n  "), file=sys.stderr)
            continue
        warnings = [v for c in location_contracts(loc.path.parent).values() for v in policies.evaluate(c)]
        for w in warnings:
            print(f"{name}: {w}")
        print(f"{name}: ok" + (f" ({len(warnings)} warnings)" if warnings else ""))
    if base is not None:
        from mesh_platform.contract_report import check_base

        try:
            failed += check_base(base)
        except ValueError as exc:  # not a git revision
            print(f"mesh check: {exc}", file=sys.stderr)
            return 2
    return 1 if failed else 0


def _audit(settings: Settings, args) -> int:
    from mesh_platform.audit import AuditLog
    from mesh_platform.audit_report import entries_json, format_entries, format_problems

    log = AuditLog(settings.home)
    if args.what == "verify":
        problems = log.verify()
        print(format_problems(problems) if problems else f"audit log intact ({log.path})")
        return 1 if problems else 0
    since = datetime.fromisoformat(args.since) if args.since else None
    entries = log.entries(product=args.product, actor=args.location, action=args.action, since=since)
    print(entries_json(entries) if args.json else format_entries(entries))
    return 0


def _grants(settings: Settings, what: str) -> int:
    from mesh_platform.grants import GrantStore
    from mesh_platform.places import local_catalog

    store = GrantStore(local_catalog(str(settings.home), settings.catalog_uri).url)
    if what == "apply":
        from mesh_platform.audit import AuditLog
        from mesh_platform.governance import apply_grants
        from mesh_platform.location import location_contracts
        from mesh_platform.workspace import locations

        audit = AuditLog(settings.home)
        for loc in locations().values():
            for contract in location_contracts(loc.path.parent).values():
                for change in apply_grants(store, audit, "platform", contract):
                    print(f"{change.action}: {change.grant.describe()}")
    for grant in store.all():
        print(grant.describe())
    return 0


def _infra(settings: Settings, what: str, clouds: list[str] | None, detailed_exitcode: bool) -> int:
    """Like `terraform plan|apply`: each change on a line of its own (+ create/grant, ~ update,
    - revoke), then what waits (grants on tables not yet published)."""
    from mesh_platform.cloud import infra

    if settings.env != "prod":
        print(f"mesh infra: cloud infrastructure exists in the prod environment only (MESH_ENV={settings.env}); "
              "run it with MESH_ENV=prod", file=sys.stderr)
        return 2
    chosen = list(dict.fromkeys(clouds or infra.CLOUDS))
    try:
        contracts = infra.product_contracts()
        if what == "apply":
            changes = infra.apply(settings, chosen)
        else:
            changes = infra.plan(settings, chosen)
        for change in changes:
            print(change)
        waiting = [(c, w) for c in chosen for w in _waiting(infra.provisioner(c, settings, contracts))]
    except (RuntimeError, ValueError, OSError) as exc:  # AwsError & co. name the endpoint; config errors the file
        print(f"mesh infra {what}: {exc}", file=sys.stderr)
        return 1
    for cloud, item in waiting:
        print(f"  {cloud}: waiting: {item}")
    verb = "applied" if what == "apply" else "to change"
    print(f"{len(changes)} {verb} on {', '.join(chosen) or 'no cloud'}" if changes
          else f"nothing {'changed' if what == 'apply' else 'to change'} on {', '.join(chosen) or 'no cloud'}")
    return 2 if what == "plan" and changes and detailed_exitcode else 0


def _waiting(provisioner) -> list[str]:
    waiting = getattr(provisioner, "waiting", None)
    return waiting() if callable(waiting) else []


def _tags(args) -> dict[str, str]:
    from mesh_platform.contracts import ALLOW_DROP_TAG

    return {ALLOW_DROP_TAG: "true"} if args.allow_volume_drop else {}


def _maintain(settings: Settings, args) -> int:
    from datetime import timedelta

    from mesh_platform.cloud.infra import product_contracts
    from mesh_platform.maintenance import maintain_all

    with _instance():
        pass  # runs left STARTED by a dead worker are marked failed first
    report = maintain_all(
        settings.home, settings.env, product_contracts(), catalog_url=settings.catalog_uri, keep_versions=args.keep,
        min_age=timedelta(hours=args.min_age_hours), orphan_age=timedelta(hours=args.older_than_hours),
        dry_run=args.dry_run,
    )
    from mesh_platform.audit import AuditLog
    from mesh_platform.maintenance import audit

    audit(AuditLog(settings.home), report, actor="platform")
    print(report.summary())
    return 0


def _stoppable(*args) -> int:
    """`mesh materialize`: a Ctrl-C through a UI ends the refresh once its runs are terminated and
    reported (the summary printed), then exit 1 as for any failed product, without a traceback."""
    try:
        return _materialize(*args)
    except KeyboardInterrupt:
        return 1


def _materialize(names: list[str], in_process: bool, tags: dict[str, str], select: str | None = None,
                 verbose: bool = False) -> int:
    """The selected products of `names` (default: every location), locations in lineage order,
    one run at a time: DuckDB already spreads one product over every core, and the machine's
    memory then holds one step's worth, not one per location (see mesh_platform.refresh)."""
    from mesh_platform.workspace import loading_once

    with loading_once():
        return _refresh(names, in_process, tags, select, verbose)


def _refresh(names: list[str], in_process: bool, tags: dict[str, str], select: str | None, verbose: bool) -> int:
    from rich.console import Console

    from mesh_platform.refresh import refresh
    from mesh_platform.workspace import locations

    known = locations()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"the code locations are: {', '.join(known)}"
            print(f"mesh: no code location '{name}'; {hint}", file=sys.stderr)
            return 2
    plan: dict = {name: None for name in (names or known)}  # None: all of the location's products
    if select:
        from mesh_platform.selection import SelectionError, resolve

        try:
            plan = resolve(select, list(plan))
        except SelectionError as exc:
            print(f"mesh: {exc}", file=sys.stderr)
            return 2
    from mesh_platform.ui_launch import LaunchError, running_ui

    console = Console(highlight=False, soft_wrap=True)
    quiet = None if verbose else {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    log_file = None if verbose else Settings.from_env().home / "logs" / "materialize.log"
    start = time.perf_counter()
    ui = running_ui(Path(os.environ["DAGSTER_HOME"]))
    if ui is not None:
        console.print(f"launching through the Dagster UI on {ui.url}")
        ui.wait_until_loaded()
    try:
        with _instance() as instance:
            done = refresh(plan, instance, in_process=in_process, tags=tags, console=console,
                           run_config=None if ui else quiet, log_file=None if ui else log_file, ui=ui, links=verbose)
    except LaunchError as exc:
        print(f"mesh: {exc}", file=sys.stderr)
        return 2
    console.print(f"\n{'Done' if done.ok else 'Finished with failures'} in {time.perf_counter() - start:.1f}s. "
                  f"{done.summary()}")
    if not done.ok and ui is not None:
        console.print(f"Dagster's log of these runs: in the UI, {ui.url}/runs")
    elif not done.ok and log_file is not None:
        console.print(f"Dagster's log of these runs: {log_file} (or -v to see it here; every run is in the UI)")
    if done.interrupted:  # for the caller too: `mesh ui --materialize` then stops its UI
        raise KeyboardInterrupt
    return 0 if done.ok else 1


def _instance():
    """The instance under DAGSTER_HOME, configured by the mesh, with runs whose worker died marked
    failed. Several processes may start at once on a new home, and Dagster's first-time SQLite
    migrations race, so creation is serialised with a file lock."""
    import fcntl

    import dagster as dg

    from mesh_platform.runs import fail_orphaned_runs, write_instance_config

    home = Path(os.environ["DAGSTER_HOME"])
    write_instance_config(home, Settings.from_env())
    with open(home / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
    fail_orphaned_runs(instance)
    return instance


def _status(settings: Settings, as_json: bool = False) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from mesh_platform.status import product_status

    rows = product_status(settings)
    if as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("domain", "product", "owner", "version", "rows", "last published", "freshness", "checks"):
        table.add_column(name, justify="right" if name == "rows" else "left")
    for r in rows:
        table.add_row(
            r.domain, r.product, r.owner, r.contract_version,
            f"{r.rows:,}" if r.rows is not None else "-",
            datetime.fromtimestamp(r.published_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            if r.published_ms else "never",
            r.freshness, r.checks,
        )
    Console(highlight=False, width=200).print(table)
    return 0


def _ui(settings: Settings, port: int, materialize: bool, tags: dict[str, str]) -> int:
    """`dagster dev` in its own session, its log in logs/ui.log, announced for `mesh materialize`
    (mesh_platform.ui_launch) while it serves. Ctrl-C (or SIGTERM) stops it and all it started."""
    import socket
    import subprocess

    from mesh_platform.runs import write_instance_config
    from mesh_platform.ui_launch import RunningUI, announce, withdraw
    from mesh_platform.workspace import WORKSPACE

    with socket.socket() as probe:  # dagster dev keeps running when its webserver cannot bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            print(f"mesh ui: port {port} on 127.0.0.1 is in use; choose another with --port", file=sys.stderr)
            return 2
    write_instance_config(settings.dagster_home, settings)
    log = settings.home / "logs" / "ui.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    dagster = Path(sys.executable).with_name("dagster")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job starts with it ignored
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)], stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    ui = RunningUI(port, proc.pid)
    print(f"starting the Dagster UI on {ui.url} (its log: {log})", flush=True)
    try:
        while not ui.answers():
            if proc.poll() is not None:
                print(f"mesh ui: dagster dev exited with {proc.returncode}; see {log}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        announce(settings.dagster_home, ui)
        if materialize:
            _materialize([], False, tags)
            _status(settings)
        print(f"Dagster UI on {ui.url} (Ctrl-C stops it and everything it started)", flush=True)
        proc.wait()
        return proc.returncode
    except (KeyboardInterrupt, ImportError) as exc:
        # A Ctrl-C that lands while DuckDB's extension initialises (`_status` imports it right
        # after the refresh) comes out as an ImportError caused by the KeyboardInterrupt.
        if isinstance(exc, ImportError) and not isinstance(exc.__cause__, KeyboardInterrupt):
            raise
        print("\nstopping the Dagster UI and everything it started ...", flush=True)
        return 0
    finally:
        withdraw(settings.dagster_home, ui)
        _stop(proc)


def _stop(proc) -> None:
    """SIGINT to `dagster dev`'s session, as Ctrl-C in its terminal would: it stops its webserver,
    daemon and code servers. SIGKILL to what is left after 30 s."""
    import subprocess

    import psutil

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) == proc.pid:
                p.kill()
        except (ProcessLookupError, psutil.Error):
            pass
    proc.poll()


if __name__ == "__main__":
    sys.exit(main())
