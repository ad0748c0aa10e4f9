"""Saving and loading a model's parameters, the same way for every backend.

A *state* is plain JSON-able data::

    {"format": "gradspec.mlp/1",
     "architecture": {"kind": "MLP", "nin": 2, "nouts": [16, 16, 1],
                      "activations": ["relu", "relu", "linear"]},
     "parameters": [0.23, -0.71, ...]}

``parameters`` lists every parameter's ``data`` in ``module.parameters()`` order;
``architecture`` identifies the model's shape (a Layer or Neuron records its sizes and
activation; any other Module only its parameter count). Floats go through JSON
exactly (``repr`` round-trips), so a model saved from one backend loads into another
and gives bit-identical outputs.

Loading validates everything before it assigns anything: a state that does not fit
the model raises and leaves the model untouched. Every such error is a
:class:`ValueError` whose message names the file and echoes at most a short prefix of
what the file holds: :class:`~spec.errors.ShapeError` when the architecture or the
number of parameters differs, :class:`~spec.errors.NonFiniteError` for a NaN, an
infinity or a number too large for a float64 (``1e400``, a 400-digit integer), and a
plain :class:`ValueError` for data that is not a gradspec state (a wrong format tag, a
missing key, a non-number, a corrupt or truncated file, data nested too deeply, or a
file larger than :func:`max_file_bytes`, which is refused before it is read). A file
that cannot be opened raises :class:`OSError`, as :func:`open` does, and so does a path
that is not a regular file, refused before anything is read from it and without waiting
on it: :class:`IsADirectoryError` for a folder (as :func:`open` raises), and an
:class:`OSError` with errno ``EINVAL`` that names the path and what it is for a FIFO (named
pipe), a device such as ``/dev/zero`` or a socket (no such thing holds a saved state, and
reading a FIFO would wait for a writer forever).

Saving is atomic and durable: the JSON goes to a temporary file
``.gradspec-XXXXXXXX.tmp`` in the target's folder, is synced to disk and renamed over
the target, and then the folder is synced. A symbolic link is written through (its
final target is replaced; the link stays). A new file gets the permissions
:func:`open` would give it (``0o666`` less the umask); an existing file keeps its
permission bits. A failure raises :class:`OSError` naming the path and leaves the old
file as it was. Temporary files that a killed save left behind are removed by a later
save into the same folder (see :func:`save` for which files count as left behind).

Example::

    model.save("moons.json")
    other = load_backend("numba").MLP(2, [16, 16, 1])
    other.load("moons.json")
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Mapping
from contextlib import suppress
from numbers import Real
from typing import Any, BinaryIO

from spec.errors import NonFiniteError, ShapeError
from spec.nn import MLP, Layer, Module, Neuron
from spec.operands import echo

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; an open file cannot be deleted there anyway
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT",
    "architecture",
    "load",
    "load_state_dict",
    "max_file_bytes",
    "save",
    "state_dict",
]

#: the format tag of every state; a new layout gets a new number
FORMAT = "gradspec.mlp/1"
_KEYS = {"format", "architecture", "parameters"}

# A saved parameter takes at most 28 bytes ("  -1.2345678901234567e-308,\n"); allow 4x that
# for hand-written or re-indented files, plus room for the architecture.
_FILE_BYTES_BASE = 1 << 20
_FILE_BYTES_PER_PARAMETER = 128
# A JSON integer with more digits than this exceeds every float64 (the largest has 309).
_MAX_INTEGER_DIGITS = 309

# Temporary files: one short name, whatever the target's length.
_TEMPORARY_PREFIX, _TEMPORARY_SUFFIX = ".gradspec-", ".tmp"
_TEMPORARY = re.compile(r"\.gradspec-[0-9a-f]{8}\.tmp")
# A temporary file this old (by mtime) and not locked by a writer is an orphan.
_ORPHAN_AGE_S = 60.0
# POSIX renames a file that is still open, so a writer holds its lock until the rename.
_RENAME_WHILE_OPEN = os.name == "posix"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def architecture(module: Module) -> dict[str, Any]:
    """What identifies ``module``'s shape: sizes and activations, or the parameter count."""
    if isinstance(module, MLP):
        return {
            "kind": "MLP",
            "nin": module.nin,
            "nouts": [len(layer.neurons) for layer in module.layers],
            "activations": [layer.neurons[0].activation for layer in module.layers],
        }
    if isinstance(module, Layer):
        first = module.neurons[0]
        return {
            "kind": "Layer",
            "nin": first.nin,
            "nout": len(module.neurons),
            "activation": first.activation,
        }
    if isinstance(module, Neuron):
        return {"kind": "Neuron", "nin": module.nin, "activation": module.activation}
    return {"kind": "Module", "parameters": len(module.parameters())}


def state_dict(module: Module) -> dict[str, Any]:
    """``module``'s state: format tag, architecture and parameter values (see the module docstring)."""
    return {
        "format": FORMAT,
        "architecture": architecture(module),
        "parameters": [p.data for p in module.parameters()],
    }


def load_state_dict(module: Module, state: object) -> None:
    """Set ``module``'s parameters from ``state``; on any problem raise and change nothing."""
    values = _validated_parameters(module, state)
    for p, value in zip(module.parameters(), values, strict=True):
        p.data = value


def max_file_bytes(module: Module) -> int:
    """The largest file :func:`load` reads into ``module``: 1 MiB plus 128 bytes a parameter.

    :func:`save` writes at most 28 bytes a parameter, so any state of this model fits with
    room to spare; a larger file is refused before it is read.
    """
    return _FILE_BYTES_BASE + _FILE_BYTES_PER_PARAMETER * len(module.parameters())


# --- saving ---


def save(module: Module, path: str | os.PathLike[str]) -> None:
    """Write ``module``'s state to ``path`` as JSON, atomically and durably.

    The JSON goes to a temporary file ``.gradspec-XXXXXXXX.tmp`` (a short name, so any
    name the filesystem accepts can be saved) in the folder of ``path``'s final target (a
    symbolic link is followed and stays a link), is flushed to disk, replaces the target
    in one rename, and then the folder is synced, so after a crash ``path`` holds either
    the old file or the new one, whole. A new file gets ``0o666`` less the umask, as with
    :func:`open`; an existing file keeps its permission bits (a hard link to it keeps the
    old contents, as with any atomic save).

    Any failure raises :class:`OSError` naming ``path`` (``FileNotFoundError`` for a
    missing folder, ``PermissionError``, ``IsADirectoryError``, ...) and leaves the old
    file as it was. One case differs: when syncing the folder after the rename fails with
    an I/O error, the new file is in place but may not survive a crash, and the
    :class:`OSError` says so (a filesystem that cannot sync folders is not an error).

    Each save first removes *orphans* from the target's folder: temporary files a killed
    save left behind. An orphan has our naming (``.gradspec-XXXXXXXX.tmp``, or
    ``.NAME.XXXXXXXX.tmp`` of the older naming for this target's NAME), is a regular file
    of this user, was last modified over a minute ago, and is not locked: a writer holds
    an exclusive ``flock`` on its temporary file until the rename, and the lock dies with
    its process, so a live save's file, however slow, is never removed. (Without
    ``fcntl``, as on Windows, the open file itself cannot be deleted.)
    """
    text = json.dumps(state_dict(module), indent=1, allow_nan=False) + "\n"
    target = _final_target(path)
    folder, name = os.path.split(target)
    try:
        mode = _existing_mode(target)
        _remove_orphans(folder, name)
        fd, temporary = _create_temporary(folder)
    except OSError as error:
        raise _about(error, path) from None
    try:
        with open(fd, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
            if mode is not None:
                _chmod(file.fileno(), temporary, mode)
            if _RENAME_WHILE_OPEN:
                os.replace(temporary, target)  # still locked: no save's cleanup can take it
        if not _RENAME_WHILE_OPEN:
            os.replace(temporary, target)
    except BaseException as error:
        with suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _about(error, path) from None
        raise
    _sync_folder(folder, path)


def _final_target(path: str | os.PathLike[str]) -> str:
    """``path`` with every symbolic link resolved: the file a save must replace."""
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath stops at a loop of links
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fspath(path))
    return target


def _existing_mode(target: str) -> int | None:
    """The permission bits of the file at ``target``, or None for a new file (the umask applies)."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), target)
    if not stat.S_ISREG(info.st_mode):  # a device or a pipe: a rename would replace it, not write to it
        raise OSError(errno.EINVAL, "not a regular file, so it cannot be replaced by a saved state", target)
    return stat.S_IMODE(info.st_mode)


def _create_temporary(folder: str) -> tuple[int, str]:
    """A new, locked temporary file in ``folder``: its descriptor and path.

    Made with mode ``0o666`` so that the umask (and a folder's default ACL) applies, as
    for :func:`open`; ``mkstemp`` would make it private.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = os.path.join(folder, f"{_TEMPORARY_PREFIX}{secrets.token_hex(4)}{_TEMPORARY_SUFFIX}")
        try:
            fd = os.open(temporary, flags, 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            with suppress(OSError):  # a filesystem without locks: the age rule still protects it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, temporary
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", folder)


def _chmod(fd: int, path: str, mode: int) -> None:
    if os.chmod in os.supports_fd:
        os.chmod(fd, mode)
    else:
        os.chmod(path, mode)


def _sync_folder(folder: str, path: str | os.PathLike[str]) -> None:
    """Sync ``folder`` so that the rename into it survives a crash (POSIX only)."""
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows has no folder handles to sync
    cannot_sync = {errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF}
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        if error.errno in cannot_sync:
            return  # this filesystem or folder does not allow it: nothing more can be done
        raise OSError(
            error.errno,
            f"saved, but its folder could not be synced to disk, so the new file may not survive "
            f"a crash: {error.strerror}",
            os.fspath(path),
        ) from None


def _about(error: OSError, path: str | os.PathLike[str]) -> OSError:
    """``error`` restated about ``path`` (not the temporary file); the subclass follows the errno."""
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror, os.fspath(path))


def _remove_orphans(folder: str, name: str) -> None:
    """Remove the temporary files killed saves left in ``folder`` (the rule is in :func:`save`)."""
    legacy = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")
    now = time.time()
    try:
        with os.scandir(folder) as entries:
            candidates = [
                entry.path
                for entry in entries
                if _TEMPORARY.fullmatch(entry.name) or legacy.fullmatch(entry.name)
            ]
    except OSError:
        return  # the save itself will report an unusable folder
    for candidate in candidates:
        if _is_orphan(candidate, now):
            with suppress(OSError):
                os.unlink(candidate)


def _is_orphan(path: str, now: float) -> bool:
    flags = os.O_RDONLY | _CLOEXEC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False  # gone, a link, or not ours to read
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < _ORPHAN_AGE_S:
            return False
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return False
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while a live writer holds it
        now_there = os.lstat(path)  # a writer that just renamed it away leaves nothing to remove
        return (now_there.st_dev, now_there.st_ino) == (info.st_dev, info.st_ino)
    except OSError:
        return False
    finally:
        os.close(fd)


# --- loading ---


def load(module: Module, path: str | os.PathLike[str]) -> None:
    """Read a state written by :func:`save` into ``module``; on any problem raise and change nothing.

    A file larger than :func:`max_file_bytes` is refused before it is read, and a path that
    is not a regular file (a folder, a FIFO, a device) before it is read or waited on, with
    :class:`OSError` (see the module docstring).
    """
    where = os.fspath(path)
    limit = max_file_bytes(module)
    with _open_regular_file(path) as file:
        size = os.fstat(file.fileno()).st_size
        raw = file.read(limit + 1) if size <= limit else b""
    if size > limit or len(raw) > limit:  # the second: a file that grew while it was read
        shown, done = (
            (f"{size:,} bytes", "it was not read")
            if size > limit
            else (f"over {limit:,} bytes", "reading stopped there")
        )
        raise ValueError(
            f"{where} is {shown}, more than any state of this model takes ({limit:,} bytes at most: "
            f"1 MiB plus {_FILE_BYTES_PER_PARAMETER} bytes for each of its "
            f"{len(module.parameters())} parameters); {done}"
        )
    try:
        state = json.loads(raw.decode("utf-8"), parse_int=_parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{where} is not a gradspec state file ({error}); it may be truncated or corrupt"
        ) from None
    except RecursionError:
        raise ValueError(f"{where} is not a gradspec state file: its data is nested too deeply") from None
    try:
        load_state_dict(module, state)
    except ValueError as error:
        raise type(error)(f"{where}: {error}") from None


# os.open flags for load: O_NONBLOCK so that opening a FIFO returns at once instead of
# waiting for a writer, O_NOCTTY so that a terminal never becomes ours. Neither changes
# how a regular file reads (and _open_regular_file clears O_NONBLOCK anyway).
_READ_FLAGS = (
    os.O_RDONLY
    | _CLOEXEC
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading in binary, or :class:`OSError` if it is not a regular file.

    The path is checked before it is opened (opening some devices acts: a tape rewinds),
    and what was opened is checked again, in case the path changed in between: opened
    with ``O_NONBLOCK``, even a FIFO put there meanwhile is refused without waiting.
    """
    _refuse_unless_regular(os.stat(path).st_mode, path)
    fd = os.open(path, _READ_FLAGS)
    try:
        _refuse_unless_regular(os.fstat(fd).st_mode, path)
        if _READ_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)  # a regular file never blocks, but read it plainly all the same
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_unless_regular(mode: int, path: str | os.PathLike[str]) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    kind = next((name for test, name in _KINDS if test(mode)), "a file of another kind")
    raise OSError(
        errno.EINVAL,
        f"not a regular file but {kind}, so it holds no saved state; it was not read",
        os.fspath(path),
    )


class _HugeInteger:
    """A JSON integer with more digits than any float64 has, kept as its length: converting
    thousands of digits is slow and beyond ``sys.get_int_max_str_digits()`` raises."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


def _parse_int(text: str) -> int | _HugeInteger:
    digits = len(text) - text.startswith("-")
    return int(text) if digits <= _MAX_INTEGER_DIGITS else _HugeInteger(digits)


def _as_json(value: object) -> str:
    return json.dumps(value, default=repr)


def _echo_keys(keys: set[Any]) -> str:
    shown = sorted(map(echo, keys))[:5]
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return f"[{', '.join(shown)}]{more}"


def _identical(stored: object, expected: object) -> bool:
    """Equal, and of the same JSON types throughout: ``2.0`` is no size, nor is ``true`` 1."""
    if type(stored) is not type(expected):
        return False
    if isinstance(expected, dict):
        assert isinstance(stored, dict)
        return stored.keys() == expected.keys() and all(_identical(stored[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        assert isinstance(stored, list)
        return len(stored) == len(expected) and all(map(_identical, stored, expected))
    return stored == expected


def _validated_parameters(module: Module, state: object) -> list[float]:
    """The parameter values of ``state`` as floats, once every check has passed."""
    if not isinstance(state, Mapping):
        raise ValueError(
            f"a gradspec state is a mapping with keys {sorted(_KEYS)}, got {type(state).__name__}"
        )
    if state.get("format") != FORMAT:
        raise ValueError(
            f"not a gradspec state of format {FORMAT!r}: its format is {echo(state.get('format'))}"
        )
    if set(state) != _KEYS:
        missing, unknown = sorted(_KEYS - set(state)), set(state) - _KEYS
        raise ValueError(
            f"a gradspec state has exactly the keys {sorted(_KEYS)}: missing {missing}, unknown {_echo_keys(unknown)}"
        )
    expected = architecture(module)
    if not _identical(state["architecture"], expected):
        raise ShapeError(
            f"the state is for {echo(state['architecture'], render=_as_json)}, but this model is {json.dumps(expected)}"
        )
    values = state["parameters"]
    count = len(module.parameters())
    if not isinstance(values, list):
        raise ValueError(f"a state's parameters are a list of numbers, got {type(values).__name__}")
    if len(values) != count:
        raise ShapeError(f"the state has {len(values)} parameters, but this model has {count}")
    floats = []
    for index, value in enumerate(values):
        number = value if type(value) is float else _as_parameter(index, value)
        if not math.isfinite(number):
            raise NonFiniteError(f"parameter {index} of the state is {number!r}; parameters must be finite")
        floats.append(number)
    return floats


def _as_parameter(index: int, value: object) -> float:
    """A parameter that is not already a float, as one (an int, a NumPy scalar, a Fraction)."""
    if isinstance(value, _HugeInteger):
        raise NonFiniteError(
            f"parameter {index} of the state is an integer of {value.digits} digits, too large for "
            f"a float64; parameters must be finite"
        )
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"parameter {index} of the state is not a number: {echo(value)}")
    try:
        return float(value)
    except OverflowError:  # an integer (or a Fraction) beyond float64
        raise NonFiniteError(
            f"parameter {index} of the state is a number too large for a float64 "
            f"({type(value).__name__}); parameters must be finite"
        ) from None
