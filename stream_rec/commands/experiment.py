"""`stream-rec experiment start|stop|list`: experiments on the re-ranking policy.

An experiment is one record on the compacted experiments topic (key = its id). Every worker
follows the topic, so starting, changing or stopping one needs no restart; shoppers are
assigned to arms by a stable hash of (salt, user_id) (stream_rec/core/experiments.py).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError
from stream_rec.topics import publish_experiment, read_experiments

if TYPE_CHECKING:
    from stream_rec.core.experiments import Experiment


def register(sub: Any, settings: Settings) -> None:
    """Add the ``experiment`` subcommand."""
    parser = f.add_command(
        sub, "experiment", "start, stop, list, report or simulate experiments",
        "An experiment splits shoppers between arms, each with its own re-ranking policy "
        "(and optionally model version), so that what shoppers do with the lists they are "
        "shown settles which balance of relevance and diversity sells. 'start ID --arms "
        "control=dpp:0.15,diverse=dpp:0.3' defines or changes one (an arm's model: "
        "name=policy@VERSION); 'stop ID' ends it (its shoppers get the default policy again); "
        "'list' shows them; 'report ID' prints per-arm figures, comparisons with the first "
        "arm (the control) and the sample-ratio check; 'simulate' runs a worker on the local "
        "broker with simulated shoppers and prints the report. Running workers follow the "
        "experiments topic: no restart.")
    parser.add_argument("action", choices=["start", "stop", "list", "report", "simulate"],
                        help="what to do")
    parser.add_argument("id", metavar="ID", nargs="?", help="the experiment's id")
    parser.add_argument("--arms", metavar=f.ARMS,
                        help="name=policy pairs separated by ',', e.g. control=dpp:0.15,"
                             "diverse=dpp:0.3 (policies: none, dpp:THETA, mmr:LAMBDA; "
                             "name=policy@VERSION also pins a model version)")
    parser.add_argument("--weights", metavar=f.WEIGHTS,
                        help="traffic weight of each arm, separated by ',' (default: equal)")
    parser.add_argument("--allocation", choices=["fixed", "thompson"], default="fixed",
                        help="fixed weights, or a Thompson-sampling bandit that moves traffic "
                             "to the arm with the better click-through (default %(default)s)")
    parser.add_argument("--floor", metavar=f.FRACTION, type=f.fraction, default=None,
                        help="thompson: each arm's least share of the traffic (default 0.1)")
    parser.add_argument("--traffic", metavar=f.FRACTION, type=f.fraction, default=1.0,
                        help="share of shoppers in the experiment (default %(default)g)")
    parser.add_argument("--salt", metavar="ID",
                        help="what shoppers are hashed with (default: the id; a new salt "
                             "reshuffles who is in which arm)")
    simulate = parser.add_argument_group("simulate")
    simulate.add_argument("--shoppers", metavar=f.N, type=f.count(1), default=300,
                          help="simulated shoppers (default %(default)s)")
    simulate.add_argument("--events", metavar=f.N, type=f.count(1), default=3000,
                          help="storefront events to send (default %(default)s)")
    simulate.add_argument("--seed", metavar=f.N, type=int, default=0,
                          help="seed of the shoppers and their choices (default %(default)s)")
    simulate.add_argument("--lift", metavar=f.ARMS,
                          help="plant a known effect: name=factor pairs that multiply the "
                               "simulated click probability in an arm (for testing the "
                               "statistics), e.g. diverse=1.3")
    simulate.add_argument("--registry", metavar=f.DIR,
                          help="model registry to serve (default: a small model trained on "
                               "the synthetic storefront, kept in ./registry-sim)")
    f.add_broker(parser, settings)
    f.add_json(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write or read the experiments topic, report on one, or simulate one."""
    if args.action == "simulate":
        from stream_rec.tools.simulate.run import run_simulation

        return run_simulation(args)
    settings = load_settings(broker=args.broker)
    if args.action == "list":
        return _list(settings, args.json)
    if not args.id:
        raise UserError(f"{args.action} needs the experiment's ID")
    if args.action == "report":
        report = experiment_report(settings, args.id)
        print(json.dumps(report, indent=None if args.json else 2))
        return 0
    current = read_experiments(settings).get(args.id)
    if args.action == "stop":
        if current is None:
            raise UserError(f"no experiment {args.id!r} on {settings.experiments_topic}")
        record = {**current.to_dict(), "running": False}
    else:
        record = start_record(args.id, args.arms, args.weights, args.allocation, args.floor,
                              args.traffic, args.salt, current)
    experiment = checked(args.id, record)
    publish_experiment(settings, experiment)
    print(json.dumps(experiment.to_dict()) if args.json else
          f"experiment {experiment.id} {'started' if experiment.running else 'stopped'} "
          f"on {settings.experiments_topic}")
    return 0


def _list(settings: Settings, as_json: bool) -> int:
    experiments = read_experiments(settings)
    if as_json:
        print(json.dumps({"experiments": [e.to_dict() for e in experiments.values()]}))
        return 0
    for experiment in experiments.values():
        shown = ", ".join(f"{a.name}={a.policy}{'@' + a.model if a.model else ''} ({w:g})"
                          for a, w in zip(experiment.arms, experiment.weights, strict=True))
        print(f"{experiment.id}: {'running' if experiment.running else 'stopped'}, "
              f"{experiment.allocation} v{experiment.version}, traffic "
              f"{experiment.traffic:g}, {shown}")
    if not experiments:
        print(f"no experiments on {settings.experiments_topic}")
    return 0


def start_record(experiment_id: str, arms_text: str | None, weights_text: str | None,
                 allocation: str = "fixed", floor: float | None = None, traffic: float = 1.0,
                 salt: str | None = None, current: Experiment | None = None,
                 now_ms: int | None = None) -> dict[str, Any]:
    """The record that starts (or changes) an experiment. Changing only the weights of one
    that runs with the same arms publishes its next version and keeps its history."""
    if not arms_text:
        raise UserError("start needs --arms, e.g. control=dpp:0.15,diverse=dpp:0.3")
    arms: list[dict[str, str]] = []
    for pair in arms_text.split(","):
        name, equals, policy = pair.partition("=")
        if not equals:
            raise UserError(f"--arms: {pair!r} is not name=policy")
        policy, at, model = policy.partition("@")
        arm = {"name": name.strip(), "policy": policy.strip()}
        if at:
            arm["model"] = model.strip()
        arms.append(arm)
    try:
        weights = ([float(w) for w in weights_text.split(",")] if weights_text
                   else [1.0] * len(arms))
    except ValueError:
        raise UserError(f"--weights: {weights_text!r} is not numbers separated by ','"
                        ) from None
    now = int(time.time() * 1000) if now_ms is None else now_ms
    record: dict[str, Any] = {
        "id": experiment_id, "arms": arms, "weights": weights, "salt": salt or experiment_id,
        "traffic": traffic, "running": True, "allocation": allocation,
        "version": 1, "started_ms": now, "since_ms": now}
    if floor is not None:
        record["floor"] = floor
    if (current is not None and current.running
            and [a.to_dict() for a in current.arms] == arms and current.salt == record["salt"]):
        # The same experiment with new weights or traffic: its next version, same start.
        following = current.reweighted(weights, now).to_dict()
        return {**following, "traffic": traffic, "allocation": allocation,
                "floor": record.get("floor", current.floor)}
    return record


def checked(experiment_id: str, record: dict[str, Any]) -> Experiment:
    """The experiment a record defines, checked as the workers will check it."""
    from stream_rec.core.events import InvalidEvent
    from stream_rec.core.experiments import parse_experiment

    try:
        return parse_experiment(experiment_id, json.dumps(record).encode())
    except InvalidEvent as exc:
        raise UserError(exc.reason) from None


def experiment_report(settings: Settings, experiment_id: str) -> dict[str, Any]:
    """The report of one experiment, from the experiments topic and the workers' changelogs
    (every shopper's latest state, every partition's online figures)."""
    from stream_rec.core.experiment_report import build_report
    from stream_rec.core.tally import tallies_in
    from stream_rec.serving.online_metrics import add_up, decode_partition_metrics
    from stream_rec.topics import read_latest
    from stream_rec.worker.state_guard import changelog_topic

    experiment = read_experiments(settings).get(experiment_id)
    if experiment is None:
        raise UserError(f"no experiment {experiment_id!r} on {settings.experiments_topic}")
    shoppers = read_latest(settings, changelog_topic(settings.app_id, "user-state"),
                           lambda raw: tallies_in(raw, experiment_id))
    records = read_latest(settings, changelog_topic(settings.app_id, "online-metrics"),
                          decode_partition_metrics)
    return build_report(experiment, (t for tallies in shoppers.values() for t in tallies),
                        add_up(list(records.values())))
