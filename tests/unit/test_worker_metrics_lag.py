"""Consumer lag counts events not yet processed; offsets the consumer jumped over are counted."""

from stream_rec.serving.positions import redelivered, skipped_offsets
from stream_rec.worker.metrics import WorkerMetrics, partition_lag


def test_lag_counts_from_the_last_processed_offset_of_this_generation() -> None:
    assert partition_lag(highwater=100, committed=40, processed=(3, 89), generation=3) == 10
    assert partition_lag(highwater=100, committed=40, processed=(3, 99), generation=3) == 0


def test_a_processed_offset_from_an_earlier_generation_is_ignored() -> None:
    # Another worker may have owned the partition since: resume point is the commit.
    assert partition_lag(highwater=100, committed=40, processed=(2, 89), generation=3) == 60


def test_nothing_processed_yet_counts_from_the_commit_or_the_start() -> None:
    assert partition_lag(highwater=100, committed=70, processed=None, generation=1) == 30
    assert partition_lag(highwater=100, committed=None, processed=None, generation=1) == 100


def test_a_commit_ahead_of_this_workers_processing_wins() -> None:
    assert partition_lag(highwater=100, committed=95, processed=(1, 50), generation=1) == 5


def test_a_jump_within_a_generation_counts_the_offsets_never_received() -> None:
    assert skipped_offsets(11, generation=2, last=(2, 10), committed=0) == 0
    assert skipped_offsets(20, generation=2, last=(2, 10), committed=0) == 9


def test_the_first_event_of_a_generation_is_checked_against_the_commit() -> None:
    assert skipped_offsets(20, generation=3, last=(2, 150), committed=8) == 12
    assert skipped_offsets(8, generation=3, last=(2, 150), committed=8) == 0
    assert skipped_offsets(5, generation=3, last=None, committed=None) == 0


def test_a_replay_of_lower_offsets_is_not_a_skip() -> None:
    assert skipped_offsets(3, generation=2, last=(2, 10), committed=0) == 0


def test_an_offset_taken_before_in_the_same_generation_is_a_redelivery() -> None:
    assert redelivered(10, generation=2, last=(2, 10))
    assert redelivered(3, generation=2, last=(2, 10))
    assert not redelivered(11, generation=2, last=(2, 10))


def test_after_a_rebalance_or_before_any_event_nothing_is_a_redelivery() -> None:
    # The partition may have been another worker's since: its events are new to this one.
    assert not redelivered(3, generation=3, last=(2, 10))
    assert not redelivered(0, generation=1, last=None)


def test_stalled_partitions_are_a_labelled_gauge() -> None:
    metrics = WorkerMetrics(commit_stalls={"events:2": 123})
    assert 'stream_rec_commit_stalled{partition="2",topic="events"} 123.0' in metrics.render()
    assert "stream_rec_commit_stalled{" not in WorkerMetrics().render()
