"""`Pauser`: how many records the next poll may take (in messages and in bytes) and when finished work is committed."""

from __future__ import annotations

import logging

import pytest

from worker.assignment import Partition
from worker.flow import WAKE_WHILE_PAUSED_S, Pauser, RecordSizes, Window
from worker.kafka import KafkaError, KafkaException, TopicPartition


class NoConsumer:
    """room() never touches the consumer; any call would be a bug."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"room() called the consumer's {name}")


class PauseRecorder:
    """The consumer's pause and resume, recorded."""

    def __init__(self) -> None:
        self.paused: set[tuple[str, int]] = set()
        self.positions: dict[int, int] = {}  # partition -> the offset after the last message consumed
        self.calls: list[str] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)
        self.calls.append("resume")

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, -1001)) for tp in partitions]

    def seek(self, partition: TopicPartition) -> None:
        self.calls.append(f"seek {partition.partition} {partition.offset} epoch {partition.leader_epoch}")


class BackpressureSink:
    """FlowControl's one method the pauser reports to."""

    def set_backpressure(self, paused_partitions: int) -> None:
        self.paused_partitions = paused_partitions


def _partition(number: int, *, uncommitted: int = 0, held_bytes: int = 0) -> Partition:
    partition = Partition(("t", number))
    partition.committed = 0
    partition.taken_until = uncommitted
    partition.held_bytes = held_bytes
    return partition


def _pauser(window: Window, largest_record: int = 0) -> Pauser:
    pauser = Pauser(NoConsumer(), window, flow=None)  # type: ignore[arg-type]
    pauser.record_sizes.polled(largest_record)
    return pauser


class TestRecordSizes:
    def test_before_any_record_a_poll_takes_one(self) -> None:
        assert RecordSizes().records_in(10_000_000) == 1

    def test_counts_the_room_in_records_of_the_largest_size(self) -> None:
        sizes = RecordSizes()
        sizes.polled(250_000)
        assert sizes.records_in(1_000_000) == 4
        assert sizes.records_in(999_999) == 3

    def test_a_full_room_still_lets_one_record_through(self) -> None:
        """Polling must go on: the pause, not the room, is what stops a full partition."""
        sizes = RecordSizes()
        sizes.polled(250_000)
        assert sizes.records_in(0) == 1
        assert sizes.records_in(-5) == 1

    def test_a_larger_record_is_followed_at_once(self) -> None:
        sizes = RecordSizes()
        sizes.polled(1_000)
        sizes.polled(800_000)
        assert sizes.largest == 800_000

    def test_a_large_record_is_forgotten_an_eighth_a_poll(self) -> None:
        sizes = RecordSizes()
        sizes.polled(800_000)
        sizes.polled(1_000)
        assert sizes.largest == 700_000
        for _ in range(60):
            sizes.polled(1_000)
        assert sizes.largest == 1_000

    def test_an_empty_poll_teaches_nothing(self) -> None:
        sizes = RecordSizes()
        sizes.polled(800_000)
        sizes.polled(0)
        assert sizes.largest == 800_000


class TestRoom:
    def test_small_records_are_held_back_by_the_message_share(self) -> None:
        """6 partitions, 60 messages: a share of 10; the emptiest-but-fullest readable partition has 7 left."""
        pauser = _pauser(Window(messages=60, bytes=60_000_000, batch=500), largest_record=100)
        partitions = [_partition(n, uncommitted=3 if n == 2 else 0) for n in range(6)]
        assert pauser.room(partitions) == 7

    def test_large_records_are_held_back_by_the_byte_share(self) -> None:
        """6 MB over 6 partitions is 1 MB each; with 250 kB records the fullest readable partition (600 kB held)
        has room for one more, although the message share would allow ten."""
        pauser = _pauser(Window(messages=60, bytes=6_000_000, batch=500), largest_record=250_000)
        partitions = [_partition(n, held_bytes=600_000 if n == 4 else 0) for n in range(6)]
        assert pauser.room(partitions) == 1
        partitions[4].held_bytes = 0
        assert pauser.room(partitions) == 4

    def test_the_whole_window_in_bytes_caps_the_poll(self) -> None:
        """A paused partition over its share uses the window the others' shares would leave: 1 MB over two
        partitions, one paused holding 900 kB, the other empty: 100 kB left in all, two 50 kB records."""
        consumer = PauseRecorder()
        pauser = Pauser(consumer, Window(messages=1_000, bytes=1_000_000), flow=BackpressureSink())  # type: ignore[arg-type]
        pauser.record_sizes.polled(50_000)
        partitions = [_partition(0, held_bytes=900_000), _partition(1)]
        pauser.apply(partitions, halted=False)
        assert consumer.paused == {("t", 0)}
        assert pauser.room(partitions) == 2  # 100 kB left of the window; the readable partition's share has 500 kB

    def test_the_batch_size_caps_the_poll(self) -> None:
        pauser = _pauser(Window(messages=100_000, bytes=10**12, batch=500), largest_record=10)
        assert pauser.room([_partition(0)]) == 500

    def test_before_any_record_the_first_poll_takes_one(self) -> None:
        """The size is unknown until a record has been seen: one record cannot pass a share by more than itself."""
        pauser = _pauser(Window(messages=60, bytes=6_000_000, batch=500))
        assert pauser.room([_partition(n) for n in range(6)]) == 1

    def test_no_assignment_polls_for_one(self) -> None:
        assert _pauser(Window(messages=60, bytes=6_000_000)).room([]) == 1


def _finished(partition: Partition, finished: int) -> Partition:
    """`finished` of the partition's taken messages are done and stored, not yet confirmed by the coordinator."""
    assert partition.committed is not None
    partition.stored = partition.committed + finished
    return partition


class TestCommitWouldHelp:
    """Window of 600 messages over 6 partitions: a share of 100, resumed at 50 or below."""

    window = Window(messages=600, bytes=10**9)

    def test_nothing_finished_nothing_to_commit(self) -> None:
        pauser = _pauser(self.window)
        assert not pauser.commit_would_help([_partition(n, uncommitted=90) for n in range(6)])

    def test_a_quarter_of_a_share_finished_is_worth_a_commit(self) -> None:
        pauser = _pauser(self.window)
        partitions = [_partition(n, uncommitted=40) for n in range(6)]
        _finished(partitions[3], 24)
        assert not pauser.commit_would_help(partitions)
        _finished(partitions[3], 25)
        assert pauser.commit_would_help(partitions)

    def test_a_commit_that_would_resume_a_paused_partition_is_asked_for_at_once(self) -> None:
        """Paused at 100 and still over half its share after a commit (70 held): 10 more finished would leave 60, so
        no commit yet; 20 finished would leave 50 and resume it, so commit now, below a quarter share finished."""
        consumer = PauseRecorder()
        pauser = Pauser(consumer, self.window, flow=BackpressureSink())  # type: ignore[arg-type]
        partitions = [_partition(0, uncommitted=100)] + [_partition(n) for n in range(1, 6)]
        pauser.apply(partitions, halted=False)
        partitions[0].committed = 30  # a commit confirmed 30: 70 held, still paused
        partitions[0].taken_until = 100
        pauser.apply(partitions, halted=False)
        assert consumer.paused == {("t", 0)}
        _finished(partitions[0], 10)
        assert not pauser.commit_would_help(partitions)
        _finished(partitions[0], 20)
        assert pauser.commit_would_help(partitions)

    def test_the_same_finished_work_on_a_running_partition_waits_for_more(self) -> None:
        """Not paused: 20 finished is below a quarter share, and there is no pause for a commit to end."""
        pauser = _pauser(self.window)
        partitions = [_finished(_partition(0, uncommitted=70), 20)] + [_partition(n) for n in range(1, 6)]
        assert not pauser.commit_would_help(partitions)


class TestResume:
    def test_a_resumed_partition_is_sought_to_its_own_position_without_an_epoch(self) -> None:
        """The seek that wakes librdkafka's fetcher goes exactly where the resume would fetch from; epoch-less, so
        librdkafka validates nothing and starts the fetch at once. A partition without a position is left alone."""
        consumer = PauseRecorder()
        pauser = Pauser(consumer, Window(messages=600, bytes=10**9), flow=BackpressureSink())  # type: ignore[arg-type]
        partitions = [_partition(n, uncommitted=100) for n in range(3)] + [_partition(n) for n in range(3, 6)]
        pauser.apply(partitions, halted=False)
        assert consumer.paused == {("t", 0), ("t", 1), ("t", 2)}
        assert consumer.calls == []  # pausing seeks nothing
        consumer.positions = {0: 100, 1: 97}
        for partition in partitions[:3]:
            partition.committed = 60  # 40 held: under half the share of 100
        pauser.apply(partitions, halted=False)
        assert consumer.paused == set()
        assert consumer.calls[0] == "resume"
        assert sorted(consumer.calls[1:]) == ["seek 0 100 epoch None", "seek 1 97 epoch None"]

    def test_a_failed_seek_leaves_the_partition_resumed_and_is_not_retried(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """librdkafka refusing the seek (a revoke under way) costs only the early fetch: one warning, the partition
        stays resumed, and the next decision does not seek again."""

        class RefusingSeek(PauseRecorder):
            def seek(self, partition: TopicPartition) -> None:
                super().seek(partition)
                raise KafkaException(KafkaError(KafkaError._STATE))

        consumer = RefusingSeek()
        pauser = Pauser(consumer, Window(messages=600, bytes=10**9), flow=BackpressureSink())  # type: ignore[arg-type]
        partitions = [_partition(0, uncommitted=100)] + [_partition(n) for n in range(1, 6)]
        pauser.apply(partitions, halted=False)
        consumer.positions = {0: 100}
        partitions[0].committed = 60
        with caplog.at_level(logging.WARNING, logger="worker.flow"):
            pauser.apply(partitions, halted=False)
            pauser.apply(partitions, halted=False)
        assert consumer.paused == set()
        assert consumer.calls == ["resume", "seek 0 100 epoch None"]
        assert [record.getMessage().startswith("pause/resume failed") for record in caplog.records] == [True]


class TestPollTimeout:
    """How long a poll may wait: the idle timeout, unless a partition waits to be resumed."""

    window = Window(messages=600, bytes=10**9)
    idle_s = 0.1

    def _applied(self, partitions: list[Partition], *, halted: bool = False) -> Pauser:
        pauser = Pauser(PauseRecorder(), self.window, flow=BackpressureSink())  # type: ignore[arg-type]
        pauser.apply(partitions, halted=halted)
        return pauser

    def test_nothing_paused_waits_the_idle_timeout(self) -> None:
        partitions = [_partition(n, uncommitted=90) for n in range(6)]
        assert self._applied(partitions).poll_timeout_s(partitions, self.idle_s, halted=False) == self.idle_s

    def test_a_partition_paused_for_backpressure_is_looked_at_every_few_milliseconds(self) -> None:
        """Its resume (after its messages finish and a commit is confirmed) is decided between polls only."""
        partitions = [_partition(0, uncommitted=100)] + [_partition(n) for n in range(1, 6)]
        pauser = self._applied(partitions)
        assert pauser.poll_timeout_s(partitions, self.idle_s, halted=False) == WAKE_WHILE_PAUSED_S
        assert self.idle_s > WAKE_WHILE_PAUSED_S

    def test_once_resumed_the_idle_timeout_is_back(self) -> None:
        partitions = [_partition(0, uncommitted=100)] + [_partition(n) for n in range(1, 6)]
        pauser = self._applied(partitions)
        partitions[0].committed = 60  # a commit confirmed: 40 held, under half the share of 100
        pauser.apply(partitions, halted=False)
        assert pauser.poll_timeout_s(partitions, self.idle_s, halted=False) == self.idle_s

    def test_a_hold_is_not_polled_for(self) -> None:
        """Every partition is paused while the dead-letter path is held, but the worker's progress cannot end it."""
        partitions = [_partition(n) for n in range(6)]
        pauser = self._applied(partitions, halted=True)
        assert pauser.poll_timeout_s(partitions, self.idle_s, halted=True) == self.idle_s

    def test_a_partition_no_longer_owned_does_not_count(self) -> None:
        """Paused, then revoked: the partitions still owned are not paused, so nothing waits to be resumed."""
        partitions = [_partition(0, uncommitted=100)] + [_partition(n) for n in range(1, 6)]
        pauser = self._applied(partitions)
        assert pauser.poll_timeout_s(partitions[1:], self.idle_s, halted=False) == self.idle_s
