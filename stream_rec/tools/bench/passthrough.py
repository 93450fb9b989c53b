"""The two baselines as targets: bare Faust and bare aiokafka, each its own process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from stream_rec.config import Settings, env_name
from stream_rec.tools.bench.processes import ChildProcess, free_port
from stream_rec.tools.worker_process import settings_env


class FaustPassthrough:
    """``stream_rec.tools.bench.passthrough_faust`` under ``faust worker``, configured like the
    worker."""

    name = "faust_passthrough"

    def __init__(self, settings: Settings, prefix: str, work_dir: Path) -> None:
        self.in_topic, self.out_topic = f"{prefix}.events", f"{prefix}.out"
        self.partitions = settings.partitions
        self.settings = settings.with_overrides(
            app_id=prefix, state_dir=str(work_dir / f"{prefix}-state"), web_port=free_port())
        env = {**os.environ, **settings_env(self.settings),
               "BENCH_IN_TOPIC": self.in_topic, "BENCH_OUT_TOPIC": self.out_topic}
        env.pop(env_name("kafka_port"), None)
        argv = [sys.executable, "-m", "faust", "-A", "stream_rec.tools.bench.passthrough_faust",
                "worker", "--loglevel", "warn", "--web-host", self.settings.web_host,
                "--web-port", str(self.settings.web_port)]
        self.process = ChildProcess(self.name, argv, env, work_dir / f"{self.name}.log")

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        self.process.start()

    def check_alive(self) -> None:
        self.process.check_alive()

    def stop(self) -> None:
        self.process.stop()


class AiokafkaPassthrough:
    """``stream_rec.tools.bench.passthrough_aiokafka``: a consume-and-produce loop, no framework."""

    name = "aiokafka_passthrough"

    def __init__(self, settings: Settings, prefix: str, work_dir: Path) -> None:
        self.in_topic, self.out_topic = f"{prefix}.events", f"{prefix}.out"
        self.partitions = settings.partitions
        argv = [sys.executable, "-m", "stream_rec.tools.bench.passthrough_aiokafka",
                "--broker", settings.broker, "--in", self.in_topic, "--out", self.out_topic,
                "--group", prefix]
        self.process = ChildProcess(self.name, argv, dict(os.environ),
                                    work_dir / f"{self.name}.log")

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        self.process.start()

    def check_alive(self) -> None:
        self.process.check_alive()

    def stop(self) -> None:
        self.process.stop()
