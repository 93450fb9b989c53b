"""`stream-rec demo`: stream-rec live on a local broker, with a web page to watch and click.

``run_demo`` (in ``run.py``) wires it up; ``traffic.py`` sends the storefront's shoppers,
``site.py`` and ``web.py`` serve the page in ``page/``, ``experiment.py`` keeps the running
A/B experiment's report for its panel, ``figures.py`` and ``api.py`` are the pure parts
(metrics maths, request checks).
"""

from __future__ import annotations

from stream_rec.tools.demo.run import run_demo

__all__ = ["run_demo"]
