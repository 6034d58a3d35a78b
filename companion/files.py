"""Every engine's file access: regular files only, bounded reads, and the workspace confinement.

One `Access` decides what may be opened. It is set per tool run (`companion.toolbox.run_tool`
sets it from the `ToolContext`), so the check happens on the path actually opened, after
`realpath`, inside the engines, whatever path an argument, an index or a folder walk produced.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from companion.errors import InputError

DEFAULT_CAP = 256 << 20  # bytes; a parser passes its own smaller cap where it knows better


class Access:
    """What may be opened: anything (None) or only files under the given roots (confined)."""

    def __init__(self, roots: Sequence[Path] | None = None) -> None:
        self.roots = None if roots is None else tuple(Path(os.path.realpath(r)) for r in roots)

    @property
    def confined(self) -> bool:
        """Whether opens are limited to the workspace roots."""
        return self.roots is not None

    def allows(self, path: Path) -> bool:
        """Whether `path` (after realpath) lies inside the roots, or no roots apply."""
        if self.roots is None:
            return True
        real = Path(os.path.realpath(path))
        return any(real.is_relative_to(r) for r in self.roots)

    def check(self, path: Path, what: str = "File") -> Path:
        """The real path of `path`, or InputError when confinement forbids it."""
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError) as exc:
            raise os_error(path, what, exc) from None
        if self.roots is not None and not any(real.is_relative_to(r) for r in self.roots):
            raise InputError(
                f"{what} {path} resolves to {real}, outside the workspace folders.",
                hint="open a file inside the workspace (symlinks and indexes may not leave it).",
            )
        return real

    def open_fd(self, path: Path, what: str = "File") -> int:
        """A read-only descriptor of a regular file (never blocks on a FIFO or device)."""
        self.check(path, what)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, ValueError) as exc:
            raise os_error(path, what, exc) from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise InputError(
                    f"{what} {path} is not a regular file (a FIFO, device or socket).",
                    hint="point at a regular file; companion never reads pipes or devices.",
                )
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open(self, path: Path, what: str = "File") -> BinaryIO:
        """A binary reader of a regular file; the caller closes it."""
        return os.fdopen(self.open_fd(path, what), "rb")

    def read_bytes(self, path: Path, cap: int = DEFAULT_CAP, what: str = "File") -> bytes:
        """The whole content of a regular file of at most `cap` bytes."""
        with self.open(path, what) as fh:
            size = os.fstat(fh.fileno()).st_size
            data = fh.read(cap + 1) if size <= cap else b""
        if size > cap or len(data) > cap:
            raise InputError(
                f"{what} {path} is {size:,} bytes; a file of its kind is at most {cap:,}.",
                hint="pass the intended file; this one is too large for its kind.",
            )
        return data

    def read_text(self, path: Path, cap: int = DEFAULT_CAP, what: str = "File") -> str:
        """The UTF-8 text of a regular file of at most `cap` bytes."""
        try:
            return self.read_bytes(path, cap, what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{what} {path} is not UTF-8 text ({exc.reason}).", hint="pass a text file."
            ) from None

    def head(self, path: Path, size: int, what: str = "File") -> bytes:
        """The first `size` bytes of a regular file."""
        with self.open(path, what) as fh:
            return fh.read(size)

    def is_regular(self, path: Path) -> bool:
        """A regular file (following symlinks) that confinement allows; never raises."""
        try:
            return stat.S_ISREG(os.stat(path).st_mode) and self.allows(path)
        except (OSError, ValueError):
            return False


def output_target(path: Path, overwrite: bool, what: str = "Output") -> Path:
    """Where a tool may write: a new file, or an existing regular file only when asked."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise os_error(path, what, exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {path} exists and is not a regular file.", hint=_ELSEWHERE)
    if not overwrite:
        raise InputError(
            f"{what} {path} already exists; companion does not overwrite files unasked.",
            hint="choose a new path, or pass --overwrite to replace it.",
        )
    return path


_ELSEWHERE = "choose a new file path for the output."
UNCONFINED = Access()
_CURRENT: ContextVar[Access] = ContextVar("companion_file_access", default=UNCONFINED)


def current() -> Access:
    """The file access of the running job (unconfined outside a confined tool run)."""
    return _CURRENT.get()


@contextmanager
def using(access: Access) -> Iterator[Access]:
    """Run a block with `access` deciding every engine open."""
    token = _CURRENT.set(access)
    try:
        yield access
    finally:
        _CURRENT.reset(token)


def os_error(path: Path | str, what: str, exc: BaseException) -> InputError:
    """An OSError (or a NUL in a path) as an InputError naming the next step."""
    code = getattr(exc, "errno", None)
    if code == errno.ENAMETOOLONG:
        return InputError(f"{what} path is too long ({len(str(path))} characters).", hint=_SHORT)
    if code == errno.ELOOP:
        return InputError(f"{what} {path} is a symlink loop.", hint="fix the symlink.")
    if code == errno.ENOENT:
        return InputError(f"{what} {path} does not exist.", hint="check the path.")
    if code == errno.EISDIR:
        return InputError(f"{what} {path} is a folder.", hint="pass a file inside it.")
    reason = getattr(exc, "strerror", None) or str(exc)
    return InputError(f"Cannot open {what.lower()} {path}: {reason}.", hint="check permissions.")


_SHORT = "pass a shorter path (each name under 255 bytes, the whole under 4096)."


def open_fd(path: Path, what: str = "File") -> int:
    """`current().open_fd`."""
    return current().open_fd(path, what)


def open_regular(path: Path, what: str = "File") -> BinaryIO:
    """`current().open`."""
    return current().open(path, what)


def read_bytes(path: Path, cap: int = DEFAULT_CAP, what: str = "File") -> bytes:
    """`current().read_bytes`."""
    return current().read_bytes(path, cap, what)


def read_text(path: Path, cap: int = DEFAULT_CAP, what: str = "File") -> str:
    """`current().read_text`."""
    return current().read_text(path, cap, what)


def is_regular(path: Path) -> bool:
    """`current().is_regular`."""
    return current().is_regular(path)
