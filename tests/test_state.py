"""spec.state and Module.save/load: plain JSON, validated before any change, portable across backends."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from benchmarks.training import try_load_backends
from spec import SGD, Backend, Module, NonFiniteError, ShapeError, load_backend, mse_loss
from spec.state import FORMAT, architecture, max_file_bytes

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions, links and locks")

BACKENDS, _ = try_load_backends()
PYTHON = load_backend("python")  # always tested, even if the registry lost it


def _backends() -> list[Backend]:
    return [PYTHON, *(b for name, b in sorted(BACKENDS.items()) if name != "python")]


def _data(model: Any) -> list[float]:
    return [p.data for p in model.parameters()]


class Pair(Module):
    """A Module that is not an MLP: two bare parameters."""

    def __init__(self, value_type: type) -> None:
        self.a, self.b = value_type(1.5), value_type(-2.0)

    def parameters(self) -> list[Any]:
        return [self.a, self.b]


def test_state_dict_is_plain_json_with_the_architecture() -> None:
    model = PYTHON.MLP(2, [3, 1], activation="tanh", output_activation="sigmoid", seed=0)
    state = model.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["format"] == FORMAT == "gradspec.mlp/1"
    assert state["architecture"] == {
        "kind": "MLP",
        "nin": 2,
        "nouts": [3, 1],
        "activations": ["tanh", "sigmoid"],
    }
    assert state["parameters"] == _data(model) and len(state["parameters"]) == 13


def test_architecture_of_each_kind_of_module() -> None:
    assert architecture(PYTHON.Layer(3, 2, activation="relu")) == {
        "kind": "Layer",
        "nin": 3,
        "nout": 2,
        "activation": "relu",
    }
    assert architecture(PYTHON.Neuron(4, nonlin=False)) == {
        "kind": "Neuron",
        "nin": 4,
        "activation": "linear",
    }
    assert architecture(Pair(PYTHON.Value)) == {"kind": "Module", "parameters": 2}


def test_save_and_load_round_trip_every_float_exactly(tmp_path: Path) -> None:
    model = PYTHON.MLP(3, [4, 2], seed=1)
    model.parameters()[0].data = 0.1 + 0.2  # a float whose shortest repr has 17 digits
    path = tmp_path / "model.json"
    model.save(path)
    other = PYTHON.MLP(3, [4, 2], seed=2)
    other.load(path)
    assert _data(other) == _data(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"], "the temporary file was left behind"


def test_a_generic_module_round_trips() -> None:
    source, target = Pair(PYTHON.Value), Pair(PYTHON.Value)
    source.a.data = 7.25
    target.load_state_dict(source.state_dict())
    assert _data(target) == [7.25, -2.0]


@pytest.mark.parametrize("target", _backends(), ids=lambda b: b.name)
@pytest.mark.parametrize("source", _backends(), ids=lambda b: b.name)
def test_a_model_trained_on_one_backend_gives_the_same_outputs_on_another(
    source: Backend, target: Backend, tmp_path: Path
) -> None:
    trained = source.MLP(2, [8, 8, 1], activation="tanh", seed=3)
    optimizer = SGD(trained.parameters(), lr=0.1)
    inputs, targets = [[0.5, -1.0], [2.0, 0.25], [-1.5, 1.0]], [1.0, -1.0, 0.5]
    for _ in range(3):
        loss = mse_loss([trained(x) for x in inputs], targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained.save(tmp_path / "trained.json")
    loaded = target.MLP(2, [8, 8, 1], activation="tanh", seed=4)
    loaded.load(tmp_path / "trained.json")
    probes = [*inputs, [0.0, 0.0], [3.0, -2.0]]
    assert [loaded(x).data for x in probes] == [trained(x).data for x in probes]


def _with(**changes: Any) -> dict[str, Any]:
    state = PYTHON.MLP(2, [3, 1], seed=0).state_dict()
    for key, value in changes.items():
        if value is _DELETE:
            del state[key]
        else:
            state[key] = value
    return state


_DELETE = object()
_PARAMETERS = PYTHON.MLP(2, [3, 1], seed=0).state_dict()["parameters"]

BAD_STATES = {
    "not a mapping": ([1.0, 2.0], ValueError, "a gradspec state is a mapping"),
    "wrong format": (_with(format="gradspec.mlp/0"), ValueError, "its format is 'gradspec.mlp/0'"),
    "missing parameters": (_with(parameters=_DELETE), ValueError, r"missing \['parameters'\]"),
    "unknown key": (_with(extra=1), ValueError, r"unknown \['extra'\]"),
    "other widths": (
        _with(architecture={"kind": "MLP", "nin": 2, "nouts": [4, 1], "activations": ["relu", "linear"]}),
        ShapeError,
        "the state is for",
    ),
    "other activation": (
        _with(architecture={"kind": "MLP", "nin": 2, "nouts": [3, 1], "activations": ["tanh", "linear"]}),
        ShapeError,
        "but this model is",
    ),
    "too few parameters": (_with(parameters=_PARAMETERS[:-1]), ShapeError, "the state has 12 parameters"),
    "parameters not a list": (_with(parameters="0.5"), ValueError, "a list of numbers"),
    "a string": (_with(parameters=[*_PARAMETERS[:-1], "0.5"]), ValueError, "parameter 12 .* not a number"),
    "a null": (_with(parameters=[None, *_PARAMETERS[1:]]), ValueError, "parameter 0 .* not a number"),
    "a boolean": (_with(parameters=[True, *_PARAMETERS[1:]]), ValueError, "parameter 0 .* not a number"),
    "a NaN": (
        _with(parameters=[*_PARAMETERS[:5], math.nan, *_PARAMETERS[6:]]),
        NonFiniteError,
        "parameter 5",
    ),
    "an infinity": (_with(parameters=[-math.inf, *_PARAMETERS[1:]]), NonFiniteError, "parameter 0"),
}


@pytest.mark.parametrize(("state", "error", "message"), BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_bad_state_raises_and_leaves_the_model_untouched(state: Any, error: type, message: str) -> None:
    model = PYTHON.MLP(2, [3, 1], seed=9)
    before = _data(model)
    with pytest.raises(error, match=message):
        model.load_state_dict(state)
    assert _data(model) == before


def _with_nan_token(text: str) -> str:
    state = json.loads(text)
    state["parameters"][0] = math.nan
    return json.dumps(state)  # writes the non-standard token NaN, which json.loads accepts


@pytest.mark.parametrize(
    ("contents", "error", "message"),
    [
        (lambda text: text[: len(text) // 2], ValueError, "truncated or corrupt"),
        (lambda text: "", ValueError, "truncated or corrupt"),
        (lambda text: "\udcff", ValueError, "truncated or corrupt"),
        (_with_nan_token, NonFiniteError, "parameter 0 of the state is nan"),
    ],
    ids=["truncated", "empty", "not utf-8", "NaN token"],
)
def test_a_corrupt_file_raises_and_leaves_the_model_untouched(
    contents: Any, error: type, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "model.json"
    PYTHON.MLP(2, [3, 1], seed=0).save(path)
    path.write_bytes(contents(path.read_text()).encode("utf-8", "surrogateescape"))
    model = PYTHON.MLP(2, [3, 1], seed=9)
    before = _data(model)
    with pytest.raises(error, match=message) as raised:
        model.load(path)
    assert str(path) in str(raised.value)
    assert _data(model) == before


# --- loading: files built to break the loader ---


def _state_text(parameter_0: str = "", parameters: str = "") -> str:
    """A saved state's JSON with the raw text ``parameter_0`` as its first parameter, or
    ``parameters`` as the whole list."""
    state = PYTHON.MLP(2, [3, 1], seed=0).state_dict()
    if not parameter_0 and not parameters:
        return json.dumps(state)
    if parameters:
        state["parameters"] = "PARAMETERS"
        return json.dumps(state).replace('"PARAMETERS"', parameters)
    state["parameters"][0] = "PARAMETER"
    return json.dumps(state).replace('"PARAMETER"', parameter_0)


def _load_fails(path: Path, error: type, message: str) -> str:
    """Load ``path`` into a model, expect ``error`` matching ``message``, naming ``path``, model untouched."""
    model = PYTHON.MLP(2, [3, 1], seed=9)
    before = _data(model)
    with pytest.raises(error, match=message) as raised:
        model.load(path)
    assert type(raised.value) is error
    assert str(path) in str(raised.value)
    assert _data(model) == before
    return str(raised.value)


@pytest.mark.parametrize(
    ("digits", "message"),
    [
        ("1" + "0" * 400, "an integer of 401 digits, too large for a float64"),
        ("-" + "9" * 400, "an integer of 400 digits, too large for a float64"),
        ("9" * 309, r"a number too large for a float64 \(int\)"),  # 309 digits, just beyond float64
        ("1" + "0" * 4999, "an integer of 5000 digits, too large for a float64"),  # past int-string limit
        ("7" * 100_000, "an integer of 100000 digits"),
    ],
    ids=["400 digits", "negative", "309 digits", "5000 digits", "100000 digits"],
)
def test_a_huge_integer_parameter_raises_non_finite_error(digits: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(_state_text(parameter_0=digits))
    text = _load_fails(path, NonFiniteError, "parameter 0 of the state is " + message)
    assert "set_int_max_str_digits" not in text and len(text) < 200 + len(str(path))


def test_integer_parameters_that_fit_load_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(_state_text(parameter_0="1" + "0" * 308))  # 10**308: 309 digits, a float64
    model = PYTHON.MLP(2, [3, 1], seed=9)
    model.load(path)
    assert model.parameters()[0].data == 1e308
    path.write_text(_state_text(parameter_0="-3"))
    model.load(path)
    assert model.parameters()[0].data == -3.0 and type(model.parameters()[0].data) is float


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
        _state_text(parameters="[" * 100_000 + "]" * 100_000),
    ],
    ids=["arrays", "objects", "as the parameters"],
)
def test_data_nested_100000_deep_raises_value_error(text: str, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(text)
    _load_fails(path, ValueError, "is not a gradspec state file: its data is nested too deeply")


def test_a_value_nested_100000_deep_is_echoed_in_short() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    state = PYTHON.MLP(2, [3, 1], seed=0).state_dict()
    state["parameters"][4] = deep
    with pytest.raises(
        ValueError, match=r"parameter 4 of the state is not a number: \[\[\[\[\.\.\.\]\]\]\]$"
    ):
        PYTHON.MLP(2, [3, 1], seed=9).load_state_dict(state)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    with path.open("wb") as file:
        file.truncate(200 * 2**20)  # 200 MB, sparse: costs nothing unless read
    tracemalloc.start()
    try:
        text = _load_fails(path, ValueError, "is 209,715,200 bytes, more than any state of this model takes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated: the file was read"
    assert "1 MiB plus 128 bytes for each of its 13 parameters" in text and "it was not read" in text


def test_the_size_limit_is_exact_and_fits_any_saved_state(tmp_path: Path) -> None:
    model = PYTHON.MLP(2, [3, 1], seed=9)
    limit = max_file_bytes(model)
    assert limit == 2**20 + 128 * 13
    path = tmp_path / "model.json"
    text = _state_text()
    path.write_text(text + " " * (limit - len(text)))  # trailing whitespace is valid JSON
    model.load(path)
    path.write_text(text + " " * (limit - len(text) + 1))
    _load_fails(path, ValueError, f"more than any state of this model takes \\({limit:,} bytes at most")
    # the widest float64 repr in every parameter still leaves the limit four times the file
    wide = PYTHON.MLP(2, [64, 64, 1], seed=0)
    for p in wide.parameters():
        p.data = -2.2250738585072014e-308
    wide.save(path)
    assert 4 * (path.stat().st_size - 2**10) < 128 * len(wide.parameters())


def test_a_file_that_reports_no_size_is_read_only_to_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grows while it is read, or a device: its size says nothing, so reading stops."""
    model = PYTHON.MLP(2, [3, 1], seed=9)
    limit = max_file_bytes(model)
    path = tmp_path / "model.json"
    path.write_text(_state_text() + " " * limit)
    real_fstat = os.fstat
    monkeypatch.setattr(os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 0, *real_fstat(fd)[7:])))
    text = _load_fails(path, ValueError, f"is over {limit:,} bytes, more than any state of this model takes")
    assert "reading stopped there" in text


_HUGE = "x" * 10_000_000
_MANY_KEYS = {f"{i}{_HUGE[:100_000]}": i for i in range(50)}

ECHOED_STATES = {
    "format": _with(format=_HUGE),
    "format an int too long to print": _with(format=10**5000),
    "unknown keys": {**_with(), **_MANY_KEYS},
    "architecture": _with(architecture={"kind": _HUGE}),
    "parameters not a list": _with(parameters={"a": _HUGE}),
    "a string parameter": _with(parameters=[_HUGE, *_PARAMETERS[1:]]),
    "a list parameter": _with(parameters=[[1.0] * 1_000_000, *_PARAMETERS[1:]]),
    "an int too long to print": _with(parameters=[10**5000, *_PARAMETERS[1:]]),
}


@pytest.mark.parametrize("state", ECHOED_STATES.values(), ids=ECHOED_STATES.keys())
def test_messages_echo_only_a_short_prefix_of_the_state(state: Any) -> None:
    model = PYTHON.MLP(2, [3, 1], seed=9)
    before = _data(model)
    with pytest.raises(ValueError) as raised:
        model.load_state_dict(state)
    assert len(str(raised.value)) < 800, str(raised.value)[:1000]
    assert _data(model) == before


def test_a_file_with_a_huge_string_gives_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(_with(format="y" * 1_000_000)))
    model = PYTHON.MLP(2, [3, 1], seed=9)
    with pytest.raises(ValueError, match="its format is 'yyy") as raised:
        model.load(path)
    assert str(path) in str(raised.value) and len(str(raised.value)) < 300 + len(str(path))


# --- loading: only regular files, never waiting on one ---


def _load_in_a_thread(model: Any, path: Path, timeout_s: float = 10.0) -> BaseException | None:
    """``model.load(path)`` in a thread: the error it raised, or None. Fails the test (and
    unblocks the thread by opening the FIFO ``path`` for writing) if it waits on ``path``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            model.load(path)
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        if stat.S_ISFIFO(path.lstat().st_mode):
            os.close(os.open(path, os.O_WRONLY))  # a writer comes and goes: the read sees end of file
        thread.join(timeout_s)
        pytest.fail(f"load({path}) still waited after {timeout_s} s: it must refuse a FIFO at once")
    return outcome[0]


def _refused_as_not_regular(model: Any, path: Path, kind: str) -> None:
    before = _data(model)
    error = _load_in_a_thread(model, path)
    assert type(error) is OSError, f"expected OSError, got {error!r}"
    assert error.errno == errno.EINVAL and error.filename == str(path), error
    assert f"not a regular file but {kind}, so it holds no saved state" in str(error), error
    assert _data(model) == before


@POSIX
def test_loading_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    _refused_as_not_regular(PYTHON.MLP(2, [3, 1], seed=9), path, "a FIFO (named pipe)")
    # load holds no end of the pipe open: a writer that does not wait finds no reader
    with pytest.raises(OSError) as no_reader:
        os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    assert no_reader.value.errno == errno.ENXIO


@POSIX
def test_a_fifo_that_replaces_the_file_after_it_was_checked_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path is a regular file when checked, a FIFO when opened: O_NONBLOCK keeps the open from waiting."""
    regular, path = tmp_path / "model.json", tmp_path / "pipe"
    PYTHON.MLP(2, [3, 1], seed=0).save(regular)
    os.mkfifo(path)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular if p == path else p, *a, **k))
    _refused_as_not_regular(PYTHON.MLP(2, [3, 1], seed=9), path, "a FIFO (named pipe)")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_loading_a_device_is_refused_before_it_is_read() -> None:
    _refused_as_not_regular(PYTHON.MLP(2, [3, 1], seed=9), Path("/dev/zero"), "a character device")


def test_loading_a_folder_raises_is_a_directory_error(tmp_path: Path) -> None:
    model = PYTHON.MLP(2, [3, 1], seed=9)
    before = _data(model)
    with pytest.raises(IsADirectoryError) as raised:
        model.load(tmp_path)
    assert raised.value.errno == errno.EISDIR and raised.value.filename == str(tmp_path)
    assert _data(model) == before


def test_a_regular_file_is_read_blocking_and_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened with O_NONBLOCK to refuse FIFOs, a regular file is still read as plain open() reads it."""
    saved = PYTHON.MLP(2, [3, 1], seed=0)
    path = tmp_path / "model.json"
    path.write_text(_state_text() + " " * (max_file_bytes(saved) - len(_state_text())))  # exactly the limit
    blocking: list[bool] = []
    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:
        blocking.append(os.get_blocking(fd))
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", fstat)
    model = PYTHON.MLP(2, [3, 1], seed=9)
    model.load(path)
    assert _data(model) == _data(saved)
    assert blocking[-1], "the file load reads from is still in non-blocking mode"


# --- saving: permissions, links, names, durability, orphans ---


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@POSIX
@pytest.mark.parametrize("mask", [0o077, 0o022, 0o002, 0o027], ids=oct)
def test_a_new_file_gets_the_permissions_open_gives_it(mask: int, tmp_path: Path) -> None:
    with _umask(mask):
        PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "model.json")
        (tmp_path / "by-open.json").write_text("{}")
    assert _mode(tmp_path / "model.json") == 0o666 & ~mask == _mode(tmp_path / "by-open.json")


@POSIX
@pytest.mark.parametrize("existing", [0o640, 0o600, 0o444], ids=oct)
def test_an_overwritten_file_keeps_its_permissions(existing: int, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("old")
    path.chmod(existing)
    with _umask(0o002):
        PYTHON.MLP(2, [3, 1], seed=0).save(path)
    assert _mode(path) == existing
    assert json.loads(path.read_text())["format"] == FORMAT


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@POSIX
def test_saving_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "model.json"
    PYTHON.MLP(2, [3, 1], seed=0).save(target)
    os.symlink("../real/model.json", tmp_path / "links" / "first")  # relative
    os.symlink(tmp_path / "links" / "first", tmp_path / "links" / "second")  # a chain of two
    model = PYTHON.MLP(2, [3, 1], seed=5)
    model.save(tmp_path / "links" / "second")
    assert (tmp_path / "links" / "second").is_symlink() and (tmp_path / "links" / "first").is_symlink()
    assert json.loads(target.read_text())["parameters"] == _data(model)
    assert _only(tmp_path / "real") == ["model.json"] and _only(tmp_path / "links") == ["first", "second"]


@POSIX
def test_saving_through_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    os.symlink("model.json", tmp_path / "link")
    PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and _only(tmp_path) == ["link", "model.json"]
    PYTHON.MLP(2, [3, 1], seed=9).load(tmp_path / "model.json")


@POSIX
def test_saving_through_a_loop_of_symlinks_raises_and_writes_nothing(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError, match="Too many levels of symbolic links") as raised:
        PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "a")
    assert raised.value.errno == errno.ELOOP and raised.value.filename == str(tmp_path / "a")
    assert _only(tmp_path) == ["a", "b"]


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return 255


def test_any_name_the_filesystem_accepts_saves(tmp_path: Path) -> None:
    longest = "m" * (_name_max(tmp_path) - len(".json")) + ".json"
    model = PYTHON.MLP(2, [3, 1], seed=5)
    model.save(tmp_path / longest)
    model.save(tmp_path / longest)  # and over itself
    other = PYTHON.MLP(2, [3, 1], seed=9)
    other.load(tmp_path / longest)
    assert _data(other) == _data(model) and _only(tmp_path) == [longest]


def test_a_name_too_long_for_the_filesystem_raises_naming_it(tmp_path: Path) -> None:
    path = tmp_path / ("m" * (_name_max(tmp_path) + 1))
    with pytest.raises(OSError) as raised:
        PYTHON.MLP(2, [3, 1], seed=0).save(path)
    assert raised.value.errno == errno.ENAMETOOLONG and raised.value.filename == str(path)
    assert _only(tmp_path) == []


@POSIX
def test_the_folder_is_synced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.json"
    model = PYTHON.MLP(2, [3, 1], seed=5)
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        renamed = path.exists() and json.loads(path.read_text())["parameters"] == _data(model)
        synced.append((kind, renamed))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    model.save(path)
    assert synced == [("file", False), ("folder", True)]


@POSIX
@pytest.mark.parametrize("code", [errno.EINVAL, errno.EIO], ids=errno.errorcode.get)
def test_a_folder_that_cannot_be_synced(code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.json"
    model = PYTHON.MLP(2, [3, 1], seed=5)
    real_fsync = os.fsync

    def folder_fails(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", folder_fails)
    if code == errno.EINVAL:  # a filesystem that cannot sync folders: nothing more to do
        model.save(path)
    else:
        with pytest.raises(OSError, match="saved, but its folder could not be synced") as raised:
            model.save(path)
        assert raised.value.errno == code and raised.value.filename == str(path)
    assert json.loads(path.read_text())["parameters"] == _data(model)  # the new file is whole
    assert _only(tmp_path) == ["model.json"]


def _make_old(path: Path) -> None:
    old = time.time() - 3600
    os.utime(path, (old, old), follow_symlinks=False)


@POSIX
def test_orphans_of_killed_saves_are_removed_by_the_next_save(tmp_path: Path) -> None:
    orphans = [".gradspec-0123abcd.tmp", ".model.json.ab_c12yz.tmp"]  # ours, and the old naming
    kept = [
        ".gradspec-89abcdef.tmp",  # recent: perhaps a writer that is just starting
        ".other.json.abcdefgh.tmp",  # the old naming, but another target's
        ".gradspec-0123ABCD.tmp",
        ".gradspec-0123abcd.tmp.bak",
        "gradspec-0123abcd.tmp",
        ".gradspec-0123abc.tmp",
        "notes.tmp",
    ]
    for name in orphans + kept:
        (tmp_path / name).write_text("partial")
        if name != ".gradspec-89abcdef.tmp":
            _make_old(tmp_path / name)
    (tmp_path / "elsewhere").write_text("keep me")
    os.symlink(tmp_path / "elsewhere", tmp_path / ".gradspec-aaaaaaaa.tmp")  # not a regular file
    (tmp_path / ".gradspec-bbbbbbbb.tmp").mkdir()
    for name in [".gradspec-aaaaaaaa.tmp", ".gradspec-bbbbbbbb.tmp"]:
        _make_old(tmp_path / name)
    kept += ["elsewhere", ".gradspec-aaaaaaaa.tmp", ".gradspec-bbbbbbbb.tmp"]
    PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "model.json")
    assert _only(tmp_path) == sorted([*kept, "model.json"])
    assert (tmp_path / "elsewhere").read_text() == "keep me"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file away")
def test_an_old_temporary_file_of_another_user_is_not_an_orphan(tmp_path: Path) -> None:
    # Root may delete anyone's files: the cleanup must still leave other users' alone.
    theirs, ours = tmp_path / ".gradspec-00c0ffee.tmp", tmp_path / ".gradspec-0000beef.tmp"
    for path in (theirs, ours):
        path.write_text("partial")
    os.chown(theirs, 12345, 12345)
    for path in (theirs, ours):
        _make_old(path)
    PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "model.json")
    assert _only(tmp_path) == [theirs.name, "model.json"]


@pytest.mark.skipif(fcntl is None, reason="needs flock")
def test_an_old_temporary_file_that_is_locked_is_not_an_orphan(tmp_path: Path) -> None:
    live = tmp_path / ".gradspec-fedcba98.tmp"
    with live.open("w") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a live save holds it
        _make_old(live)
        PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "model.json")
        assert live.exists()
    PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "model.json")  # its writer is gone now
    assert _only(tmp_path) == ["model.json"]


@pytest.mark.skipif(fcntl is None, reason="needs flock")
def test_a_slow_save_survives_another_saves_cleanup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace
    slow, fast = PYTHON.MLP(2, [3, 1], seed=5), PYTHON.MLP(2, [3, 1], seed=6)

    def another_save_first(source: str, target: str) -> None:
        monkeypatch.setattr(os, "replace", real_replace)
        _make_old(Path(source))  # the slow save has held its temporary file for an hour
        fast.save(tmp_path / "other.json")
        assert Path(source).exists(), "another save removed a live temporary file"
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", another_save_first)
    slow.save(tmp_path / "model.json")
    assert json.loads((tmp_path / "model.json").read_text())["parameters"] == _data(slow)
    assert json.loads((tmp_path / "other.json").read_text())["parameters"] == _data(fast)
    assert _only(tmp_path) == ["model.json", "other.json"]


def _fail_creating_temporary_files(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_permission(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_permission)


def _raise(error: BaseException) -> Callable[..., None]:
    def fail(*args: Any) -> None:
        raise error

    return fail


FAILURES: dict[str, tuple[str, Callable[[pytest.MonkeyPatch], None], type[BaseException], str]] = {
    "disk full at the write": (
        "model.json",
        lambda m: m.setattr(os, "fsync", _raise(OSError(errno.ENOSPC, "No space left on device"))),
        OSError,
        r"\[Errno 28\] No space left on device: '.*model.json'",
    ),
    "the rename fails": (
        "model.json",
        lambda m: m.setattr(os, "replace", _raise(OSError(errno.EXDEV, "Invalid cross-device link"))),
        OSError,
        r"Invalid cross-device link: '.*model.json'",
    ),
    "interrupted": (
        "model.json",
        lambda m: m.setattr(os, "replace", _raise(KeyboardInterrupt())),
        KeyboardInterrupt,
        "^$",
    ),
    "no permission in the folder": (
        "model.json",
        _fail_creating_temporary_files,
        PermissionError,
        r"Permission denied: '.*model.json'",
    ),
    "a missing folder": (
        "missing/model.json",
        lambda m: None,
        FileNotFoundError,
        r"No such file or directory: '.*missing/model.json'",
    ),
    "a folder in the way": (
        "folder",
        lambda m: None,
        IsADirectoryError,
        r"Is a directory: '.*folder'",
    ),
}


@POSIX
def test_saving_over_a_pipe_or_device_raises_and_keeps_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file") as raised:
        PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "pipe")
    assert raised.value.errno == errno.EINVAL and raised.value.filename == str(tmp_path / "pipe")
    assert stat.S_ISFIFO((tmp_path / "pipe").lstat().st_mode) and _only(tmp_path) == ["pipe"]


@pytest.mark.parametrize(("name", "fail", "error", "message"), FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_save_raises_naming_the_path_and_keeps_the_old_file(
    name: str,
    fail: Callable[[pytest.MonkeyPatch], None],
    error: type[BaseException],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside").write_text("untouched")
    PYTHON.MLP(2, [3, 1], seed=0).save(tmp_path / "model.json")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    fail(monkeypatch)
    with pytest.raises(error, match=message) as raised:
        PYTHON.MLP(2, [3, 1], seed=5).save(tmp_path / name)
    monkeypatch.undo()
    assert ".gradspec-" not in str(raised.value), "the message names the temporary file"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert _only(tmp_path) == ["folder", "model.json"] and _only(tmp_path / "folder") == ["inside"]


@pytest.mark.parametrize(
    "change",
    [
        lambda arch: arch.update(nin=float(arch["nin"])),  # 2.0 is no layer size
        lambda arch: arch["nouts"].__setitem__(-1, True),  # nor is true
    ],
    ids=["nin_as_float", "size_as_bool"],
)
def test_architecture_sizes_must_be_integers(tmp_path: Any, change: Any) -> None:
    model = load_backend("python").MLP(2, [3, 1], seed=0)
    state = model.state_dict()
    change(state["architecture"])
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    before = [p.data for p in model.parameters()]
    with pytest.raises(ShapeError, match="the state is for"):
        model.load(path)
    assert [p.data for p in model.parameters()] == before
