"""Reproducible benchmarks of the whole pipeline on a real broker (`stream-rec bench`).

The pieces are small and separate: ``workload`` makes the events, ``harness`` sends them and
matches every recommendation to its event by ``event_id``, ``pipeline`` and ``passthrough``
run the measured processes, ``benchmark`` and ``soak`` put a run together, ``state_size``
measures user state on disk and ``report`` shapes the JSON. Progress goes to stderr.
"""
