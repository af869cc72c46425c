"""The local emulators answer real client libraries, and stop without leaving processes.

Every test talks to a real server process on 127.0.0.1 through the SDK a platform module would
use, configured only by the settings `env()` puts in the environment where that is how the
platform will configure it.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from mesh_platform import emulators
from mesh_platform.emulators import Azurite, BigQueryEmulator, SideEnvironmentMissing

ROOT = Path(__file__).resolve().parents[2]


# -- AWS (moto server) -------------------------------------------------------------------------
def test_glue_database_with_tags(aws):
    import boto3

    glue = boto3.client("glue")  # endpoint, region and credentials from the environment only
    assert glue.meta.endpoint_url == aws.endpoint
    glue.create_database(
        DatabaseInput={"Name": "orders", "Description": "orders domain"},
        Tags={"domain": "orders", "owner": "team-orders"},
    )
    arn = f"arn:aws:glue:{aws.region}:{aws.account_id}:database/orders"
    assert glue.get_tags(ResourceArn=arn)["Tags"] == {"domain": "orders", "owner": "team-orders"}
    assert glue.get_database(Name="orders")["Database"]["Description"] == "orders domain"


def test_lake_formation_grant_and_list(aws):
    import boto3

    boto3.client("glue").create_database(DatabaseInput={"Name": "customer"})
    lf = boto3.client("lakeformation")
    role = {"DataLakePrincipalIdentifier": f"arn:aws:iam::{aws.account_id}:role/federation"}
    resource = {"Database": {"Name": "customer"}}
    lf.grant_permissions(Principal=role, Resource=resource, Permissions=["CREATE_TABLE", "ALTER"])
    grants = lf.list_permissions(Principal=role, Resource=resource)["PrincipalResourcePermissions"]
    assert len(grants) == 1
    assert grants[0]["Principal"] == role
    assert grants[0]["Resource"] == resource
    assert sorted(grants[0]["Permissions"]) == ["ALTER", "CREATE_TABLE"]


def test_s3_round_trip_and_reset(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="mesh-products")
    s3.put_object(Bucket="mesh-products", Key="orders/history/v1.parquet", Body=b"PAR1 bytes")
    body = s3.get_object(Bucket="mesh-products", Key="orders/history/v1.parquet")["Body"].read()
    assert body == b"PAR1 bytes"
    aws.reset()
    assert s3.list_buckets()["Buckets"] == []


# -- GCP BigQuery (bqemulator) -------------------------------------------------------------------
def test_bigquery_dataset_labels_access_and_query(bigquery):
    from google.cloud import bigquery as bq

    client = bigquery.client()
    dataset = bq.Dataset(f"{bigquery.project}.federation")
    dataset.location = "EU"
    dataset.labels = {"domain": "federation", "env": "test"}
    dataset.access_entries = [bq.AccessEntry("READER", "userByEmail", "analyst@example.com")]
    client.create_dataset(dataset)

    got = client.get_dataset(f"{bigquery.project}.federation")
    assert got.labels == {"domain": "federation", "env": "test"}
    assert got.location == "EU"
    assert [(e.role, e.entity_type, e.entity_id) for e in got.access_entries] == [
        ("READER", "userByEmail", "analyst@example.com")
    ]

    client.query("CREATE TABLE federation.customer_360 (customer_id INT64, orders INT64)").result()
    client.query("INSERT INTO federation.customer_360 VALUES (1, 3), (2, 5)").result()
    rows = client.query("SELECT customer_id, orders FROM federation.customer_360 ORDER BY 1").result()
    assert [tuple(r.values()) for r in rows] == [(1, 3), (2, 5)]


def test_bigquery_client_from_environment(bigquery):
    """BIGQUERY_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT alone point the client at the emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery as bq

    bigquery.client().create_dataset("orders")
    client = bq.Client(credentials=AnonymousCredentials())
    assert client.project == "mesh-test"
    assert [d.dataset_id for d in client.list_datasets()] == ["orders"]


# -- Azure Blob Storage (Azurite) ----------------------------------------------------------------
def test_azurite_container_with_metadata(azure):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    assert service.url.startswith(f"http://127.0.0.1:{azure.port}/devstoreaccount1")
    container = service.create_container("customer", metadata={"domain": "customer", "owner": "team-c"})
    assert container.get_container_properties().metadata == {"domain": "customer", "owner": "team-c"}
    container.upload_blob("profiles/v1.parquet", b"PAR1 bytes")
    assert container.download_blob("profiles/v1.parquet").readall() == b"PAR1 bytes"
    assert [c.name for c in service.list_containers()] == ["customer"]


# -- PostgreSQL 15 ---------------------------------------------------------------------------
def test_postgres_select_1(postgres):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "mesh"
            assert conn.execute(sa.text("SHOW server_version")).scalar_one().startswith("15.")
    finally:
        engine.dispose()


def test_postgres_stopped_mid_run_then_back(postgres):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres.url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE outage (n int)"))
            conn.execute(sa.text("INSERT INTO outage VALUES (42)"))
        port, first_pid = postgres.port, postgres.pid

        postgres.stop()
        assert not postgres.running
        assert _gone(first_pid)
        with pytest.raises(sa.exc.OperationalError):
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        postgres.start()
        assert postgres.port == port and postgres.pid != first_pid
        with engine.connect() as conn:  # the pool's dead connections are replaced
            assert conn.execute(sa.text("SELECT n FROM outage")).scalar_one() == 42
            conn.execute(sa.text("DROP TABLE outage"))
            conn.commit()
    finally:
        engine.dispose()


# -- Chromium through Playwright -------------------------------------------------------------
class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><head><title>mesh harness</title></head><body><h1 id=msg>served locally</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_chromium_loads_a_local_page(browser_page):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        response = browser_page.goto(f"http://127.0.0.1:{server.server_port}/", timeout=15_000)
        assert response.status == 200
        assert browser_page.title() == "mesh harness"
        assert browser_page.inner_text("#msg") == "served locally"
    finally:
        server.shutdown()
        server.server_close()


def test_chromium_block_leaves_no_process():
    def browse() -> dict[psutil.Process, str | None]:
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        with emulators.chromium() as context:
            page = context.new_page()
            page.set_content("<title>t</title>")
            assert page.title() == "t"
            started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
            return {p: _name(p) for p in started}  # names read while they run

    # Playwright's sync API allows one instance per thread; the session's may be open in this one.
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(browse).result(timeout=60)
    names = set(started.values())
    assert "chromium" in names and any(n and n.startswith("node") for n in names), names
    _assert_gone(list(started))  # the browser, its helpers and Playwright's driver


# -- the CLI, and nothing left behind ---------------------------------------------------------
def test_up_prints_settings_and_sigterm_stops_everything(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh_platform.emulators", "up", "--postgres", "--state", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        settings = {}
        while "PGDATABASE" not in settings:
            line = proc.stdout.readline()
            assert line, f"up ended early: {proc.wait(10)}\n{proc.stderr.read()}"
            key, _, value = line.rstrip("\n").partition("=")
            settings[key] = value
        assert set(settings) == {
            "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
            "BIGQUERY_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "AZURE_STORAGE_CONNECTION_STRING",
            "PGHOST", "PGPORT", "PGUSER", "PGDATABASE",
        }  # fmt: skip
        assert settings["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert settings["BIGQUERY_EMULATOR_HOST"].startswith("http://127.0.0.1:")
        assert "BlobEndpoint=http://127.0.0.1:" in settings["AZURE_STORAGE_CONNECTION_STRING"]
        assert (tmp_path / "emulators.env").read_text().count("\n") == len(settings)

        # Each answers, then is stopped by SIGTERM to `up` with nothing left.
        servers = psutil.Process(proc.pid).children(recursive=True)
        postmaster = _postmaster(int(settings["PGPORT"]))  # pg_ctl daemonizes it: not a child
        servers += [postmaster, *postmaster.children()]
        assert _http(f"{settings['AWS_ENDPOINT_URL']}/moto-api/config") == 201
        assert _http(f"{settings['BIGQUERY_EMULATOR_HOST']}/readyz") == 200
        import psycopg2

        with psycopg2.connect(host=settings["PGHOST"], port=settings["PGPORT"], user=settings["PGUSER"],
                              dbname=settings["PGDATABASE"]) as conn:  # fmt: skip
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
        conn.close()
        assert len(servers) >= 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        _assert_gone(servers)
        assert "emulators: stopped" in proc.stderr.read()
    finally:
        _end(proc)


def test_servers_die_with_a_harness_killed_outright(tmp_path):
    """SIGKILL gives the harness no chance to stop its servers: they go with it all the same."""
    script = (
        "import sys, time\n"
        "from mesh_platform.emulators import Azurite, MotoServer\n"
        f"servers = [MotoServer(state_dir={str(tmp_path)!r} + '/moto').start(),\n"
        f"           Azurite(state_dir={str(tmp_path)!r} + '/azurite').start()]\n"
        "print(*[s.pid for s in servers], flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        servers = [psutil.Process(int(pid)) for pid in proc.stdout.readline().split()]
        assert len(servers) == 2 and all(s.is_running() for s in servers)
        proc.kill()
        proc.wait(10)
        _assert_gone(servers)
    finally:
        _end(proc)


def test_missing_side_environments_say_which_make_target(tmp_path, monkeypatch):
    monkeypatch.setattr(emulators.bigquery, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(emulators.azure, "repo_root", lambda: tmp_path)
    with pytest.raises(SideEnvironmentMissing, match=r"emulators/bigquery/\.venv.*make setup"):
        BigQueryEmulator(state_dir=tmp_path / "bq").start()
    with pytest.raises(SideEnvironmentMissing, match=r"make setup.*npm ci"):
        Azurite(state_dir=tmp_path / "az").start()
    with pytest.raises(SideEnvironmentMissing, match=r"make setup.*apt-get install -y chromium"):
        with emulators.chromium(executable=tmp_path / "chromium"):
            pass


def _end(proc: subprocess.Popen) -> None:
    """After a failure: SIGTERM (so `up` stops its servers), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _http(url: str) -> int | None:
    from mesh_platform.emulators._process import http_status

    return http_status(url)


def _name(p: psutil.Process) -> str | None:
    try:
        return p.name()
    except psutil.NoSuchProcess:
        return None


def _postmaster(port: int) -> psutil.Process:
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["name"] == "postgres" and "-p" in cmd and cmd[cmd.index("-p") + 1] == str(port):
            return p
    raise AssertionError(f"no postgres server on port {port}")


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (dead, waiting to be reaped)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _assert_gone(processes: list[psutil.Process], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and not _gone(p.pid)]
        time.sleep(0.1)
    assert not alive, [(p.pid, _name(p)) for p in alive]
