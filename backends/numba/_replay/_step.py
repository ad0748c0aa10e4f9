"""The compiled step the replay returns: a spec.compile.ReplayStep whose every call is one :func:`run`.

``threads > 1`` runs the per-sample parts of a step (forward, and backward into per-sample
slots) on that many of Numba's threads, each on its own block of samples, and the sums into
the parameters on as many parts of a layer's neurons, where no two neurons share a
parameter. Every slot is computed by the same operations in the same order whatever the
thread count, so the results are bit-identical to one thread's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from backends.numba._replay._kernels import step_kernel
from backends.numba._replay._program import FORWARD_FAILED, UPDATE_FAILED, Program
from backends.numba._tape import current_tape, wrong_thread_error
from spec.compile import ReplayStep
from spec.errors import CaptureError

__all__ = ["NumbaStep"]


#: ``capture(inputs, targets) -> (program, info)``: trace the step on a batch and compile it
Capture = Callable[[np.ndarray, np.ndarray], tuple[Program, dict[str, Any]]]


class NumbaStep(ReplayStep):
    """A training step replayed by one Numba kernel call (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        loss_fn: Any,
        inputs: Any,
        targets: Any,
        optimizer: Any,
        capture: Capture,
        threads: int = 1,
    ):
        self._capture_program = capture
        self.threads = threads
        super().__init__(model, loss_fn, inputs, targets, optimizer)

    def _capture(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        program, info = self._capture_program(inputs, targets)
        tape = self.optimizer.params[0]._t
        if any(p._t is not tape for p in self.optimizer.params):
            raise CaptureError(
                "the parameters live on the tapes of different threads; build the model in one"
            )
        self.program, self._tape = program, tape
        self._factors = program.factors_scratch(self.threads)
        self._run = step_kernel(self.threads)
        self.info.update(info, threads=self.threads)
        self._compactions = -1
        self._nodes = np.empty(0, np.int64)

    def check_caller(self) -> None:
        """The step writes its thread's tape: another thread would race with that thread's appends."""
        if current_tape() is not self._tape:
            raise wrong_thread_error(self._tape)

    def _replay(
        self, inputs: np.ndarray, targets: np.ndarray, constants: np.ndarray
    ) -> tuple[float, np.ndarray]:
        tape, program = self._tape, self.program
        if tape.compactions != self._compactions:  # compaction renumbers the parameters' nodes
            self._nodes = np.array([p._i for p in self.parameters], np.int64)
            self._compactions = tape.compactions
        tape.fill_grad()
        tape_data = np.frombuffer(tape.data, np.float64)
        tape_grad = np.frombuffer(tape.grad, np.float64)
        if self.threads > 1:  # this thread's setting, which the prange loops read
            outer_threads = numba.get_num_threads()
            numba.set_num_threads(self.threads)
        try:
            status, where, value = self._run(
                *program[:7],
                program.plan,
                np.ascontiguousarray(inputs).reshape(-1),
                np.ascontiguousarray(targets).reshape(-1),
                tape_data,
                tape_grad,
                self._nodes,
                constants,
                self.state,
                program.scratch,
                self._factors,
                self.threads,
            )
        finally:
            if self.threads > 1:
                numba.set_num_threads(outer_threads)
            del tape_data, tape_grad  # let the tape grow again
        P = len(self.parameters)
        if status == FORWARD_FAILED:
            self._raise_forward_failure(inputs, targets)
        if status == UPDATE_FAILED:
            self._raise_update_failure(where, value)
        return value, program.grad[:P]
