"""A local single-node Apache Kafka broker (KRaft, combined broker + controller).

Used by the tests, the benchmarks and the demo, and exposed as `stream-rec kafka start|stop|
status`. The broker's jars come from Maven Central through ``deploy/kafka/pom.xml`` and are
cached outside the repository (``Settings.kafka_jars_dir``), once. Everything binds to
127.0.0.1. The broker runs in its own session so that Ctrl-C in a terminal does not reach it;
it is stopped only through its PID file, never by name.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stream_rec.config import REPO_ROOT, Settings, env_name
from stream_rec.errors import UserError

log = logging.getLogger(__name__)

DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"
MIN_JAVA = 17
_READY_MARKER = ".complete"


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the local broker runs, its PID, where clients connect, its data folder."""

    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path


def java_binary() -> str:
    """The `java` to run the broker with; raises UserError when none >= 17 is installed."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise UserError(f"Java {MIN_JAVA} or newer is needed to run Kafka: install a JDK "
                        "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME.")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise UserError(f"Kafka needs Java {MIN_JAVA} or newer but {java} is Java {major}: "
                        "install a newer JDK or point JAVA_HOME at one.")
    return java


def ensure_jars(settings: Settings) -> Path:
    """Fetch the broker's jars with Maven into the cache, unless a complete copy is there."""
    target = settings.kafka_jars_dir
    if (target / _READY_MARKER).exists():
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise UserError("Maven is needed once to fetch the Kafka broker's jars: install it "
                        "(e.g. `apt-get install maven`) and run the command again.")
    pom = DEPLOY_DIR / "pom.xml"
    if not pom.exists():
        raise UserError(f"{pom} is missing: run stream-rec from a checkout of its repository.")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    log.info("fetching Apache Kafka %s jars with Maven into %s", settings.kafka_version, target)
    cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
           f"-Dkafka.version={settings.kafka_version}", "-DincludeScope=runtime",
           f"-DoutputDirectory={staging}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise UserError("Maven could not fetch the Kafka jars: " + " | ".join(tail))
    (staging / _READY_MARKER).write_text(settings.kafka_version + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def server_properties(settings: Settings, data_dir: Path) -> str:
    """The broker's configuration: one node, loopback only, sized for a laptop or CI box."""
    host, port, cport = "127.0.0.1", settings.kafka_port, settings.controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "logs"),
        "num.partitions": "1",
        # A single node can only hold one replica of the internal topics.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Consumers join at once instead of waiting 3 s for others that will never come.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


class LocalBroker:
    """Start, stop and inspect the local broker described by ``settings``."""

    def __init__(self, settings: Settings, data_dir: Path | None = None) -> None:
        self.settings = settings
        self.data_dir = (data_dir or Path(settings.kafka_data_dir)).expanduser().resolve()
        self.bootstrap = f"127.0.0.1:{settings.kafka_port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def pid(self) -> int | None:
        """The PID in our PID file if that process is alive and is a Java process."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, PermissionError):
            return None
        return pid if b"kafka.Kafka" in cmdline else None

    def status(self) -> BrokerStatus:
        pid = self.pid()
        return BrokerStatus(pid is not None and answers_metadata(self.bootstrap), pid,
                            self.bootstrap, self.data_dir)

    def start(self, timeout_s: float = 90.0) -> BrokerStatus:
        """Start the broker and wait until it answers metadata requests; idempotent."""
        current = self.status()
        if current.running:
            log.info("Kafka is already running at %s (pid %s)", self.bootstrap, current.pid)
            return current
        if current.pid is not None:  # alive but not answering yet: give it time
            return self._wait_ready(current.pid, timeout_s)
        if _port_in_use(self.settings.kafka_port):
            raise UserError(f"port {self.settings.kafka_port} on 127.0.0.1 is taken by another "
                            "process: stop it or pick another port with --kafka-port.")
        java = java_binary()
        jars = ensure_jars(self.settings)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(server_properties(self.settings, self.data_dir))
        classpath = f"{jars}/*"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            self._format(java, classpath, config)
        cmd = [java, f"-Xmx{self.settings.kafka_heap_mb}m",
               f"-Xms{min(256, self.settings.kafka_heap_mb)}m", "-XX:+UseG1GC",
               "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.properties'}",
               "-cp", classpath, "kafka.Kafka", str(config)]
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        log.info("started Kafka %s (pid %d), waiting for %s",
                 self.settings.kafka_version, proc.pid, self.bootstrap)
        return self._wait_ready(proc.pid, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker we started (SIGTERM, then SIGKILL); True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout_s):
            log.warning("Kafka (pid %d) did not stop in %.0f s; killing it", pid, timeout_s)
            os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _format(self, java: str, classpath: str, config: Path) -> None:
        cluster_id = new_cluster_id()
        result = subprocess.run(
            [java, "-Xmx256m", f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.properties'}",
             "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(config)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise UserError("formatting Kafka storage failed: " + result.stdout + result.stderr)

    def _wait_ready(self, pid: int, timeout_s: float) -> BrokerStatus:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                tail = self.log_file.read_text(errors="replace").splitlines()[-15:]
                self.pid_file.unlink(missing_ok=True)
                raise UserError("Kafka exited during start-up; its log says:\n" + "\n".join(tail))
            if answers_metadata(self.bootstrap):
                return BrokerStatus(True, pid, self.bootstrap, self.data_dir)
            time.sleep(0.5)
        raise UserError(f"Kafka did not answer on {self.bootstrap} within {timeout_s:.0f} s; "
                        f"see {self.log_file}")


@contextmanager
def kafka_for(settings: Settings, broker_flag: str | None, keep_broker: bool = False,
              say: Callable[[str], None] = lambda _: None) -> Iterator[Settings]:
    """The settings with a reachable broker: the one the user named (``--broker``, given as
    ``broker_flag``, or ``STREAM_REC_BROKER``), else the local broker, started here if it is
    not running and stopped again on the way out (unless ``keep_broker``); a local broker
    that was already running stays."""
    if broker_flag is not None or env_name("broker") in os.environ:
        yield settings
        return
    local = LocalBroker(settings)
    started = not local.status().running
    if started:
        say(f"starting the local Kafka broker at {local.bootstrap}")
    local.start(timeout_s=180)
    try:
        yield settings.with_overrides(broker=local.bootstrap)
    finally:
        if started and not keep_broker:
            say("stopping the local Kafka broker this run started")
            local.stop()


def new_cluster_id() -> str:
    """A KRaft cluster id (base64url of 16 random bytes) that cannot be read as a flag."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # `format -t -abc...` would parse as an option
            return cluster_id


def answers_metadata(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when the broker at ``bootstrap`` answers a metadata request."""
    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            pass
    except OSError:
        return False
    from kafka import KafkaAdminClient  # kafka-python logs loudly while a broker starts

    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                                 request_timeout_ms=int(timeout_s * 1000))
        try:
            return bool(admin.describe_cluster().get("brokers"))
        finally:
            admin.close()
    except Exception:  # any failure just means "not ready yet"
        return False
    finally:
        kafka_log.setLevel(level)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return False


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
