"""Scheduling policy on bare sequences: admission, chunked prefill, block growth, preemption."""

from llm.infer.paged_kv import PagedKVCache
from llm.serve.scheduler import Scheduler
from llm.serve.sequence import SamplingOptions, Sequence, Status
from llm.infer.sampling import SamplingParams
from llm.infer.stop_strings import TextStream
from llm.tokenizer import Tokenizer

TOK = Tokenizer.train(["abc"], 260)


def seq(sid, n_prompt):
    options = SamplingOptions(SamplingParams(max_tokens=100))
    return Sequence(sid, 0, list(range(n_prompt)), options, TextStream(TOK), lambda o: None)


def run_plan(plan):
    """Pretend the model ran: prefill advances by the chunk, a completed prefill or a decode adds a token."""
    for s, n in plan.prefill:
        s.num_computed += n
        if s.uncomputed == 0:
            s.output.append(7)
    for s in plan.decode:
        s.num_computed += 1
        s.output.append(7)


def cache(blocks, size=4):
    return PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=2, num_blocks=blocks, block_size=size)


def test_waiting_sequences_are_admitted_up_to_max_batch_in_arrival_order():
    sch = Scheduler(cache(32), max_batch=2, max_prefill_tokens=100)
    a, b, c = seq(0, 5), seq(1, 5), seq(2, 5)
    for s in (a, b, c):
        sch.add(s)
    plan = sch.schedule()
    assert [s for s, _ in plan.prefill] == [a, b] and plan.admitted == [a, b]
    assert c.status is Status.WAITING
    run_plan(plan)
    sch.finish(a, "stop")
    plan = sch.schedule()
    assert plan.decode == [b] and [s for s, _ in plan.prefill] == [c]


def test_long_prompt_is_prefilled_in_chunks_while_others_decode():
    sch = Scheduler(cache(64), max_batch=4, max_prefill_tokens=16)
    short = seq(0, 4)
    sch.add(short)
    run_plan(sch.schedule())
    long = seq(1, 40)
    sch.add(long)
    chunks = []
    for _ in range(3):
        plan = sch.schedule()
        assert plan.decode == [short]  # the running stream keeps moving every step
        chunks += [n for s, n in plan.prefill if s is long]
        run_plan(plan)
    assert chunks == [16, 16, 8] and long.output == [7]


def test_blocks_are_taken_on_demand_and_returned_at_finish():
    c = cache(8)
    sch = Scheduler(c, max_batch=4, max_prefill_tokens=100)
    s = seq(0, 4)
    sch.add(s)
    run_plan(sch.schedule())
    assert c.num_used_blocks == 1  # 4 prompt tokens fill exactly one block of 4
    run_plan(sch.schedule())  # decoding the 5th token needs a second block
    assert c.num_used_blocks == 2
    sch.finish(s, "stop")
    assert c.num_used_blocks == 0 and s.status is Status.FINISHED


def test_out_of_blocks_preempts_the_newest_sequence_which_later_recomputes():
    c = cache(4)  # 16 token slots
    sch = Scheduler(c, max_batch=4, max_prefill_tokens=100)
    old, new = seq(0, 7), seq(1, 4)
    sch.add(old)
    run_plan(sch.schedule())  # old: 8 tokens = 2 blocks
    sch.add(new)
    plan = sch.schedule()  # new admitted: 1 block; old decodes into its 2nd block
    run_plan(plan)
    assert new.status is Status.RUNNING
    for _ in range(8):
        plan = sch.schedule()
        if plan.preempted:
            break
        run_plan(plan)
    assert plan.preempted == [new] and new.status is Status.WAITING and new.num_computed == 0
    assert sch.waiting[0] is new and old in plan.decode
    sch.finish(old, "stop")
    plan = sch.schedule()
    assert [(s, n) for s, n in plan.prefill] == [(new, new.length)]  # prompt + output recomputed at once
