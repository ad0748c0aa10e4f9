"""Bounded memory: micrograd's eager loop (build, backward, update, repeat) does not grow the tape.

By default the 2,000 steps train on minibatches of 20 of the 100 moons (the
demo's ``loss(batch_size=20)``; ~14,000 nodes a step, ~20 s). Set
``GRADSPEC_FULL_MOONS=1`` for the full-batch demo (~66,000 nodes a step, ~100 s).
"""

from __future__ import annotations

import os
import random
import resource
import sys

import backends.numba as numba_backend
from backends.numba._tape import current_tape

STEPS = 2_000
WARM_UP = 100
BATCH = 100 if os.environ.get("GRADSPEC_FULL_MOONS") else 20
#: RSS may wobble by allocator noise; a leak of even 40 bytes a node would show tens of MB.
RSS_SLACK_MB = 4.0


def rss_mb() -> float:
    """The resident set size now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def test_eager_moons_training_runs_in_bounded_memory(moons_data, demo_model, demo_step, in_new_thread):  # type: ignore[no-untyped-def]
    X, y = moons_data

    def train() -> dict[str, list[float]]:
        tape = current_tape()
        model = demo_model(numba_backend)
        rng = random.Random(0)
        lengths, rss, losses = [], {}, []
        for k in range(STEPS):
            batch = rng.sample(range(len(X)), BATCH) if BATCH < len(X) else range(len(X))
            loss = demo_step(numba_backend, model, [X[i] for i in batch], [y[i] for i in batch], k % 100)
            lengths.append(len(tape))
            losses.append(loss.data)
            if k + 1 in (WARM_UP, 1_000, STEPS):
                rss[k + 1] = rss_mb()
        return {"lengths": lengths, "rss": rss, "losses": losses, "compactions": tape.compactions}

    run = in_new_thread(train)
    lengths, rss = run["lengths"], run["rss"]
    early, late = max(lengths[WARM_UP:1_000]), max(lengths[1_000:])
    nodes_per_step = lengths[0]
    figures = (
        f"tape length at steps 100/1000/2000: {lengths[99]}/{lengths[999]}/{lengths[-1]} "
        f"(max {early} over steps 100-1000, {late} over 1000-2000; {nodes_per_step} nodes a step); "
        f"RSS {rss[100]:.1f}/{rss[1000]:.1f}/{rss[2000]:.1f} MB; {run['compactions']} compactions"
    )
    print(figures)
    assert late <= early, f"the tape keeps growing: {figures}"
    assert late <= 8 * nodes_per_step, f"the tape holds many steps' graphs: {figures}"
    assert rss[2000] - rss[100] < RSS_SLACK_MB, f"RSS grows: {figures}"
    assert run["losses"][-1] < run["losses"][0], "the model should still learn"
