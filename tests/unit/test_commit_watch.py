"""A partition whose offset commits stopped is noticed, reported, and repaired if it lasts."""

from stream_rec.worker.commit_watch import CommitWatch, commit_ahead, commit_problem, commit_stall


def test_acks_that_continue_from_the_commit_are_no_stall() -> None:
    assert commit_stall(committed=40, first_acked=40) == 0
    assert commit_stall(committed=40, first_acked=41) == 0  # Faust lets one offset pass
    assert commit_stall(committed=None, first_acked=90) == 0  # never committed: from anywhere
    assert commit_stall(committed=40, first_acked=None) == 0  # nothing acked since the commit


def test_acks_that_start_past_a_gap_hold_the_partition_back() -> None:
    assert commit_stall(committed=40, first_acked=42) == 2
    assert commit_stall(committed=125, first_acked=248) == 123


def test_a_commit_that_follows_processing_is_not_ahead() -> None:
    assert commit_ahead(committed=50, processed=(3, 49), generation=3) == 0
    assert commit_ahead(committed=40, processed=(3, 49), generation=3) == 0  # commit lags
    assert commit_ahead(committed=90, processed=(2, 49), generation=3) == 0  # older generation
    assert commit_ahead(committed=None, processed=(3, 49), generation=3) == 0


def test_a_commit_past_the_processed_events_is_a_lead() -> None:
    assert commit_ahead(committed=248, processed=(3, 124), generation=3) == 123


def test_the_problem_names_its_kind_the_commit_and_the_count() -> None:
    assert commit_problem(125, first_acked=248, processed=(3, 300), generation=3) == (
        "stalled", 125, 123)
    assert commit_problem(248, first_acked=None, processed=(3, 124), generation=3) == (
        "ahead", 248, 123)
    assert commit_problem(125, first_acked=125, processed=(3, 124), generation=3) is None


def test_a_problem_counts_ticks_only_while_it_stays_the_same() -> None:
    watch = CommitWatch(repair_after_ticks=3)
    stalled = ("stalled", 125, 123)
    assert [watch.observe("e:2", stalled) for _ in range(3)] == [1, 2, 3]
    assert watch.observe("e:2", ("stalled", 130, 118)) == 1  # commits moved: a new problem
    assert watch.observe("e:2", None) == 0
    assert watch.observe("e:2", ("stalled", 130, 118)) == 1


def test_repair_comes_after_enough_ticks_and_not_again_too_soon() -> None:
    watch = CommitWatch(repair_after_ticks=3, min_repair_interval_s=60.0)
    problem = ("ahead", 248, 123)
    for _ in range(2):
        watch.observe("e:2", problem)
    assert not watch.should_repair(now=100.0)  # two ticks: maybe a rebalance's moment
    watch.observe("e:2", problem)
    assert watch.should_repair(now=100.0)
    watch.repaired(now=100.0)
    for _ in range(3):
        watch.observe("e:2", problem)  # the repair did not help (yet)
    assert not watch.should_repair(now=130.0)
    assert watch.should_repair(now=161.0)


def test_a_partition_given_away_is_forgotten() -> None:
    watch = CommitWatch(repair_after_ticks=1)
    watch.observe("e:2", ("stalled", 125, 123))
    watch.forget_others({"e:0", "e:1"})
    assert not watch.should_repair(now=1000.0)


def test_repair_can_be_switched_off() -> None:
    watch = CommitWatch(repair_after_ticks=0)
    for _ in range(10):
        watch.observe("e:2", ("stalled", 125, 123))
    assert not watch.should_repair(now=1000.0)
