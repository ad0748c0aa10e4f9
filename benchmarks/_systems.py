"""The systems the benchmark compares, each behind one small interface: ``step(k) -> loss``.

gradspec's backends (eager: the micrograd-style loop a user writes; compiled:
``spec.compile_step``), and the reference systems: micrograd 0.1.0, PyTorch (batched
tensors), NumPy written by hand (batched), JAX (``jit`` of the whole step), CasADi (a
scalar SX graph of the loss and its gradient, run by CasADi's virtual machine). Every
system starts from the workload's parameters and runs its SGD schedule in float64; the
reference systems are optional (``gradspec[bench]``) and report why they are missing.
Each writes every model kind of :data:`benchmarks._workloads.MODELS` it supports in its
own terms, or raises :class:`Unavailable` with the reason.

The digits training (:data:`DIGITS_SYSTEMS`) has its own task: minibatches, softmax
cross-entropy and Adam (or momentum), as the digits demo trains; ``step(k)`` trains on
the ``k``-th batch of :class:`DigitsTask`'s fixed order.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks import digits
from benchmarks._rbf import rbf_blocks
from benchmarks._workloads import Workload, dense_layers, flatten
from benchmarks.micrograd_loop import Clock, demo
from benchmarks.training import learning_rate, make_optimizer
from spec import SGD, compile_step, load_backend

__all__ = [
    "DIGITS_SYSTEMS",
    "SYSTEMS",
    "DigitsTask",
    "Runner",
    "Unavailable",
    "digits_task",
    "make_digits_runner",
    "make_runner",
]


class Unavailable(Exception):
    """The system cannot run this workload here (not installed, no such op, too slow)."""


@dataclass
class Runner:
    """One system set up for one workload."""

    system: str
    mode: str
    step: Callable[[int], float]
    parameters: Callable[[], list[float]]
    compile_seconds: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: seconds of each part of a step (micrograd_loop.PARTS), one entry a step, where measured
    parts: dict[str, list[float]] | None = None


# --- gradspec -----------------------------------------------------------------------------------
def _gradspec(backend_name: str, compiled: bool, threads: int = 1) -> Callable[[Workload], Runner]:
    """gradspec on ``backend_name``, eager or compiled (on ``threads`` threads: the Numba
    backend's own ``compile_step`` option)."""

    def make(w: Workload) -> Runner:
        backend = load_backend(backend_name)
        model = w.build(backend)
        optimizer = SGD(model.parameters(), w.lr)
        params = model.parameters

        def values() -> list[float]:
            return [p.data for p in params()]

        if compiled:
            start = time.perf_counter()
            if threads > 1:
                step = backend.compile_step(model, w.loss_fn, w.X, w.y, optimizer, threads=threads)
            else:
                step = compile_step(model, w.loss_fn, w.X, w.y, optimizer)
            seconds = time.perf_counter() - start
            return Runner(
                f"gradspec {backend_name}",
                f"compiled ({step.mode}{f', {threads} threads' if threads > 1 else ''})",
                lambda k: step(w.X, w.y),
                values,
                seconds,
                dict(step.info),
            )
        inputs, targets = w.X.tolist(), w.y.tolist()
        clock = Clock()

        def eager(k: int) -> float:
            clock.start()
            outputs = [model(x) for x in inputs]
            clock.mark("forward")
            loss = w.loss_of(model, outputs, targets)
            clock.mark("loss")
            optimizer.zero_grad()
            loss.backward()
            clock.mark("backward")
            optimizer.step()
            clock.mark("update")
            return float(loss.data)

        return Runner(f"gradspec {backend_name}", "eager", eager, values, parts=clock.parts)

    return make


# --- micrograd's demo loop, on micrograd and on gradspec ----------------------------------------------
def _micrograd_loop(system: str, load: Callable[[], tuple[Any, Any]]) -> Callable[[Workload], Runner]:
    """micrograd's demo loop (benchmarks.micrograd_loop) on the ``Value`` and ``MLP`` that ``load`` gives."""

    def make(w: Workload) -> Runner:
        if w.name != "moons":
            raise Unavailable("micrograd's demo loop trains micrograd's moons only")
        Value, MLP = load()
        model, step, clock = demo(Value, MLP, w.X, w.y)
        if [p.data for p in model.parameters()] != w.init:
            raise Unavailable("this MLP does not draw micrograd's initial parameters")
        return Runner(
            system,
            "micrograd's loop",
            lambda k: float(step(k)[0].data),
            lambda: [p.data for p in model.parameters()],
            parts=clock.parts,
        )

    return make


def _micrograd_classes() -> tuple[Any, Any]:
    try:
        from micrograd.engine import Value  # type: ignore[import-untyped]
        from micrograd.nn import MLP  # type: ignore[import-untyped]
    except ImportError as error:
        raise Unavailable(f"micrograd is not installed ({error}); pip install 'gradspec[bench]'") from None
    return Value, MLP


def _gradspec_classes(backend_name: str) -> Callable[[], tuple[Any, Any]]:
    def load() -> tuple[Any, Any]:
        backend = load_backend(backend_name)
        return backend.Value, backend.MLP

    return load


# --- PyTorch ----------------------------------------------------------------------------------------
def _torch(w: Workload) -> Runner:
    try:
        import torch
    except ImportError as error:
        raise Unavailable(f"PyTorch is not installed ({error}); pip install 'gradspec[bench]'") from None
    torch.set_num_threads(1)
    X, y = torch.tensor(w.X), torch.tensor(w.y)
    params: list[Any]
    if w.model == "rbf":
        units, bias = rbf_blocks(w.init, w.X.shape[1])
        params = [torch.tensor(units, requires_grad=True), torch.tensor(bias, requires_grad=True)]

        def scores() -> Any:
            units, b = params
            c, gamma, a = units[:, :-2], units[:, -2], units[:, -1]
            d2 = ((X[:, None, :] - c[None, :, :]) ** 2).sum(dim=2)
            return b + (a * torch.exp(-gamma * d2)).sum(dim=1)

        def values() -> list[float]:
            units, b = (t.detach().numpy() for t in params)
            return [float(v) for v in units.ravel()] + [float(b)]

    else:
        layers = [
            (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
            for W, b in dense_layers(w.init, w.sizes)
        ]
        params = [t for pair in layers for t in pair]
        act = {"relu": torch.relu, "tanh": torch.tanh, "linear": lambda h: h}

        def scores() -> Any:
            h = X
            for i, (W, b) in enumerate(layers):
                h = act[w.output_activation if i == len(layers) - 1 else w.activation](h @ W.T + b)
            return h[:, 0]

        def values() -> list[float]:
            return flatten([(W.detach().numpy(), b.detach().numpy()) for W, b in layers])

    def step(k: int) -> float:
        s = scores()
        if w.loss == "svm":
            loss = torch.relu(1 - y * s).mean() + w.alpha * sum((p * p).sum() for p in params)
        else:
            loss = ((s - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        lr = w.lr(k)
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
        return float(loss.item())

    return Runner(f"PyTorch {torch.__version__}", "eager, batched", step, values)


# --- NumPy by hand ------------------------------------------------------------------------------------
def _numpy(w: Workload) -> Runner:
    if w.model != "mlp":
        raise Unavailable(f"NumPy by hand: only the MLP's backward is written out, not the {w.model}'s")
    layers = dense_layers(w.init, w.sizes)
    X, y, n = w.X, w.y, len(w.y)
    last = len(layers) - 1

    def step(k: int) -> float:
        hs, zs = [X], []
        for i, (W, b) in enumerate(layers):
            z = hs[-1] @ W.T + b
            zs.append(z)
            kind = w.output_activation if i == last else w.activation
            hs.append(np.maximum(z, 0.0) if kind == "relu" else np.tanh(z) if kind == "tanh" else z)
        s = hs[-1][:, 0]
        if w.loss == "svm":
            margin = 1.0 - y * s
            loss = np.maximum(margin, 0.0).mean() + w.alpha * sum(
                (W * W).sum() + (b * b).sum() for W, b in layers
            )
            ds = -y * (margin > 0.0) / n
        else:
            loss = ((s - y) ** 2).mean()
            ds = 2.0 * (s - y) / n
        dh = ds[:, None]
        grads = []
        for i in range(last, -1, -1):
            W, b = layers[i]
            kind = w.output_activation if i == last else w.activation
            dz = (
                dh * (zs[i] > 0.0)
                if kind == "relu"
                else dh * (1.0 - hs[i + 1] ** 2)
                if kind == "tanh"
                else dh
            )
            dW, db = dz.T @ hs[i], dz.sum(axis=0)
            if w.alpha:
                dW, db = dW + 2.0 * w.alpha * W, db + 2.0 * w.alpha * b
            grads.append((dW, db))
            dh = dz @ W
        lr = w.lr(k)
        for (W, b), (dW, db) in zip(layers, reversed(grads), strict=True):
            W -= lr * dW
            b -= lr * db
        return float(loss)

    return Runner(f"NumPy {np.__version__}", "batched, by hand", step, lambda: flatten(layers))


# --- Numba loops by hand: the practical floor ------------------------------------------------------------
def _numba_by_hand(w: Workload) -> Runner:
    if w.model != "mlp":
        raise Unavailable(f"hand-fused Numba: only the MLP's step is written out, not the {w.model}'s")
    from benchmarks._hand_numba import ACTIVATION_CODES, hand_step

    layers = dense_layers(w.init, w.sizes)
    W = np.concatenate([Wl.ravel() for Wl, _ in layers])
    b = np.concatenate([bl for _, bl in layers])
    sizes = np.array(w.sizes, np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes[1:] * sizes[:-1])[:-1])).astype(np.int64)
    acts = np.array(
        [ACTIVATION_CODES[w.activation]] * (len(layers) - 1) + [ACTIVATION_CODES[w.output_activation]],
        np.int64,
    )
    n, X = len(w.y), np.ascontiguousarray(w.X, np.float64)
    h, z = np.zeros((n, sizes.sum())), np.zeros((n, sizes.sum()))
    dh, dW, db = np.zeros((n, 2 * sizes.max())), np.zeros_like(W), np.zeros_like(b)
    svm = w.loss == "svm"

    def step(k: int) -> float:
        lr = w.lr(k)
        return float(hand_step(X, w.y, W, b, offsets, sizes, acts, svm, w.alpha, lr, h, z, dh, dW, db))

    def parameters() -> list[float]:
        blocks, i, j = [], 0, 0
        for fan_in, fan_out in itertools.pairwise(w.sizes):
            blocks.append((W[i : i + fan_in * fan_out].reshape(fan_out, fan_in), b[j : j + fan_out]))
            i, j = i + fan_in * fan_out, j + fan_out
        return flatten(blocks)

    return Runner("hand-fused Numba", "loops by hand", step, parameters)


# --- JAX -------------------------------------------------------------------------------------------------
def _jax(w: Workload) -> Runner:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as error:
        raise Unavailable(f"JAX is not installed ({error}); pip install 'jax[cpu]'") from None
    jax.config.update("jax_enable_x64", True)
    init: Any
    if w.model == "rbf":
        units, bias = rbf_blocks(w.init, w.X.shape[1])
        init = (jnp.asarray(units), jnp.asarray(bias))

        def scores(params: Any, X: Any) -> Any:
            units, b = params
            c, gamma, a = units[:, :-2], units[:, -2], units[:, -1]
            d2 = jnp.sum((X[:, None, :] - c[None, :, :]) ** 2, axis=2)
            return b + jnp.sum(a * jnp.exp(-gamma * d2), axis=1)

        def values() -> list[float]:
            units, b = state["params"]
            return [float(v) for v in np.asarray(units).ravel()] + [float(b)]

    else:
        init = [(jnp.asarray(W), jnp.asarray(b)) for W, b in dense_layers(w.init, w.sizes)]
        act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "linear": lambda h: h}
        last = len(w.sizes) - 2

        def scores(params: Any, X: Any) -> Any:
            h = X
            for i, (W, b) in enumerate(params):
                h = act[w.output_activation if i == last else w.activation](h @ W.T + b)
            return h[:, 0]

        def values() -> list[float]:
            return flatten([(np.asarray(W), np.asarray(b)) for W, b in state["params"]])

    def loss_fn(params: Any, X: Any, y: Any) -> Any:
        s = scores(params, X)
        if w.loss == "svm":
            squares = sum(jnp.sum(p * p) for p in jax.tree_util.tree_leaves(params))
            return jnp.mean(jax.nn.relu(1.0 - y * s)) + w.alpha * squares
        return jnp.mean((s - y) ** 2)

    def train_step(params: Any, X: Any, y: Any, lr: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

    state = {"params": init}
    X, y = jnp.asarray(w.X), jnp.asarray(w.y)
    start = time.perf_counter()
    compiled = jax.jit(train_step).lower(state["params"], X, y, 1.0).compile()
    seconds = time.perf_counter() - start

    def step(k: int) -> float:
        state["params"], loss = compiled(state["params"], X, y, w.lr(k))
        return float(loss)

    return Runner(f"JAX {jax.__version__}", "jit (whole step)", step, values, seconds)


# --- CasADi ------------------------------------------------------------------------------------------
def _casadi(w: Workload) -> Runner:
    """The loss as one scalar SX graph over symbols for every parameter, input and target, in
    spec's order of operations; ``casadi.gradient`` differentiates it and a ``casadi.Function``
    (CasADi's SX virtual machine, no code generation) evaluates loss and gradient each step.
    The SGD update is NumPy's. Setup (graph, gradient, Function) is its compile time."""
    try:
        import casadi  # type: ignore[import-untyped]
    except ImportError as error:
        raise Unavailable(f"CasADi is not installed ({error}); pip install 'gradspec[bench]'") from None
    n, nin = w.X.shape
    start = time.perf_counter()
    params = [casadi.SX.sym(f"p{i}") for i in range(len(w.init))]
    X, y = casadi.SX.sym("X", n, nin), casadi.SX.sym("y", n)
    s = (_casadi_rbf if w.model == "rbf" else _casadi_mlp)(casadi, w, params, X)
    # spec.losses: a mean is sum(terms) * (1 / n), summed left to right; relu(x) is fmax(x, 0)
    if w.loss == "svm":
        terms = [casadi.fmax(1.0 + -y[i] * s[i], 0.0) for i in range(n)]
    else:
        terms = [(s[i] - y[i]) ** 2 for i in range(n)]
    loss = reduce(operator.add, terms) * (1.0 / n)
    if w.loss == "svm":
        loss = loss + w.alpha * reduce(operator.add, [p * p for p in params])
    p = casadi.vertcat(*params)
    f = casadi.Function("loss_and_gradient", [p, X, y], [loss, casadi.gradient(loss, p)])
    seconds = time.perf_counter() - start
    state = np.array(w.init, np.float64)
    data, labels = casadi.DM(w.X), casadi.DM(w.y)

    def step(k: int) -> float:
        loss, grad = f(state, data, labels)
        state[:] = state - w.lr(k) * np.asarray(grad).ravel()
        return float(loss)

    info = {"sx_instructions": f.n_instructions(), "sx_nodes": f.n_nodes()}
    return Runner(
        f"CasADi {casadi.__version__}",
        "SX VM (loss + grad)",  # CasADi's SX virtual machine
        step,
        lambda: [float(v) for v in state],
        seconds,
        info,
    )


def _casadi_mlp(casadi: Any, w: Workload, params: list[Any], X: Any) -> Any:
    """The MLP's scores for all rows of ``X``. Each layer is one ``mtimes`` of ``[1 | h]`` and
    ``[b ; W.T]``: it adds in the order of the inner index, and SX folds ``0 + 1 * b`` to ``b``,
    so each neuron is ``b + w0*x0 + w1*x1 + ...``, spec.nn's order, node for node."""
    act = {"relu": lambda h: casadi.fmax(h, 0.0), "tanh": casadi.tanh, "linear": lambda h: h}
    h, i, last = X, 0, len(w.sizes) - 2
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(w.sizes)):
        neurons = []
        for _ in range(fan_out):  # spec order: a neuron's weights, then its bias
            neurons.append(casadi.vertcat(params[i + fan_in], *params[i : i + fan_in]))
            i += fan_in + 1
        z = casadi.mtimes(casadi.horzcat(casadi.DM.ones(X.size1(), 1), h), casadi.horzcat(*neurons))
        h = act[w.output_activation if layer == last else w.activation](z)
    return h


def _casadi_rbf(casadi: Any, w: Workload, params: list[Any], X: Any) -> Any:
    """The RBF model's scores for all rows of ``X``, column-wise: benchmarks._rbf.RBF's order."""
    width = X.size2() + 2
    out = casadi.repmat(params[-1], X.size1(), 1)
    for k in range(len(params) // width):
        *centre, gamma, a = params[k * width : (k + 1) * width]
        d2 = (X[:, 0] - centre[0]) ** 2
        for j in range(1, X.size2()):
            d2 = d2 + (X[:, j] - centre[j]) ** 2
        out = out + a * casadi.exp(-gamma * d2)
    return out


#: name -> how to set it up for a workload, in the order the table lists them
SYSTEMS: dict[str, Callable[[Workload], Runner]] = {
    "micrograd": _micrograd_loop("micrograd 0.1.0", _micrograd_classes),
    "python-loop": _micrograd_loop("gradspec python", _gradspec_classes("python")),
    "numba-loop": _micrograd_loop("gradspec numba", _gradspec_classes("numba")),
    "python-eager": _gradspec("python", compiled=False),
    "python-compiled": _gradspec("python", compiled=True),
    "numba-eager": _gradspec("numba", compiled=False),
    "numba-compiled": _gradspec("numba", compiled=True),
    "numba-compiled-2t": _gradspec("numba", compiled=True, threads=2),
    "torch": _torch,
    "numpy": _numpy,
    "numba-hand": _numba_by_hand,
    "jax": _jax,
    "casadi": _casadi,
}


def make_runner(name: str, w: Workload) -> Runner:
    """Set up system ``name`` for workload ``w``, or raise :class:`Unavailable`."""
    return SYSTEMS[name](w)


# --- digits: minibatches, cross-entropy, Adam ----------------------------------------------------------
@dataclass(frozen=True)
class DigitsTask:
    """The digits training every system runs: one split, one batch order, one initialisation, one schedule."""

    config: digits.DigitsConfig
    split: digits.Split
    #: the training-set indices of every step, epoch after epoch
    batches: list[NDArray[np.intp]]
    #: the initial parameters in spec order (``MLP(..., seed, init)``'s, on any backend)
    init: list[float]

    @property
    def steps_per_epoch(self) -> int:
        return len(self.split.y_train) // self.config.batch_size

    @property
    def lr(self) -> Callable[[int], float]:
        """The learning rate of step ``k`` (:func:`benchmarks.training.learning_rate`)."""
        return learning_rate(self.config.start_lr, len(self.batches))


def digits_task(config: digits.DigitsConfig | None = None) -> DigitsTask:
    """The task of a digits demo run (its defaults unless ``config`` says otherwise)."""
    config = config or digits.DigitsConfig()
    split = digits.load_split()
    rng = np.random.default_rng(config.seed)
    n = len(split.y_train)
    batches = [
        index for _ in range(config.epochs) for index in digits.epoch_batches(n, config.batch_size, rng)
    ]
    model = digits.build_model(config, load_backend("python"))
    return DigitsTask(config, split, batches, [p.data for p in model.parameters()])


def _gradspec_digits(backend_name: str) -> Callable[[DigitsTask], Runner]:
    def make(task: DigitsTask) -> Runner:
        config = task.config
        model = digits.build_model(config, load_backend(backend_name))
        params = model.parameters()
        if [p.data for p in params] != task.init:
            raise Unavailable(f"the {backend_name} backend's MLP starts from other parameters")
        optimizer = make_optimizer(config.optimizer, params, config.start_lr, len(task.batches))
        X, T = task.split.X_train, task.split.T_train
        first = task.batches[0]
        _warm_up(backend_name, X[first[:2]], T[first[:2]])
        start = time.perf_counter()
        step = compile_step(model, digits.digits_loss, X[first], T[first], optimizer)
        seconds = time.perf_counter() - start

        def train(k: int) -> float:
            index = task.batches[k]
            return step(X[index], T[index])

        return Runner(
            f"gradspec {backend_name}",
            f"compiled ({step.mode})",
            train,
            lambda: [p.data for p in params],
            seconds,
            dict(step.info),
        )

    return make


def _warm_up(backend_name: str, X: NDArray[np.float64], T: NDArray[np.float64]) -> None:
    """Capture and run a tiny digits step, untimed: Numba compiles (or loads) its kernels here,
    so the timed capture is the capture alone, as on a warm machine."""
    model = load_backend(backend_name).MLP(64, [1, 10], seed=0, init="scaled")
    optimizer = make_optimizer("adam", model.parameters(), 0.01, 1)
    compile_step(model, digits.digits_loss, X, T, optimizer)(X, T)


def _torch_digits(task: DigitsTask) -> Runner:
    try:
        import torch
    except ImportError as error:
        raise Unavailable(f"PyTorch is not installed ({error}); pip install 'gradspec[bench]'") from None
    torch.set_num_threads(1)
    config = task.config
    layers = [
        (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
        for W, b in dense_layers(task.init, config.sizes)
    ]
    params = [t for pair in layers for t in pair]
    X, y = torch.tensor(task.split.X_train), torch.tensor(task.split.y_train)
    batches = [torch.from_numpy(index) for index in task.batches]
    schedule = task.lr
    optimizer: Any
    if config.optimizer == "adam":  # PyTorch's defaults are spec.Adam's: betas (0.9, 0.999), eps 1e-8
        optimizer = torch.optim.Adam(params, lr=schedule(0))
    else:
        optimizer = torch.optim.SGD(params, lr=schedule(0), momentum=0.9)
    last = len(layers) - 1

    def step(k: int) -> float:
        index = batches[k]
        h = X[index]
        for i, (W, b) in enumerate(layers):
            h = h @ W.T + b
            if i < last:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y[index])
        optimizer.zero_grad()
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = schedule(k)
        optimizer.step()
        return float(loss.item())

    def values() -> list[float]:
        return flatten([(W.detach().numpy(), b.detach().numpy()) for W, b in layers])

    return Runner(f"PyTorch {torch.__version__}", "eager, batched", step, values)


#: the systems of the digits training, in the order the table lists them
DIGITS_SYSTEMS: dict[str, Callable[[DigitsTask], Runner]] = {
    "numba-compiled": _gradspec_digits("numba"),
    "torch": _torch_digits,
}


def make_digits_runner(name: str, task: DigitsTask) -> Runner:
    """Set up system ``name`` for the digits task, or raise :class:`Unavailable`."""
    return DIGITS_SYSTEMS[name](task)
