"""memjax's data home and the bAbI (and dialog bAbI) releases in it: downloaded once (with pooch) or imported,
unpacked atomically.

The data home is ``$MEMJAX_HOME/data`` (``MEMJAX_HOME`` defaults to ``$XDG_CACHE_HOME/memjax``, else
``~/.cache/memjax``); the release unpacks to ``<data home>/tasks_1-20_v1-2``. An archive is fetched
into a hidden staging folder beside the data (``.babi-download-<pid>-...``), checked against its
sha256, unpacked there, checked for the release's layout and only then renamed into place: a failed
or interrupted download or unpack leaves nothing behind (the staging folder of a killed process is
removed by the next run). Nothing here imports JAX; pooch (and requests) are imported only to download.

Dialog bAbI (Bordes, Boureau & Weston 2017) is installed the same way, to ``<data home>/dialog-bAbI-tasks``;
its archive's sha256 is not known here, so it is checked by size and, once unpacked, file by file
against the md5s of :data:`DIALOG_MD5`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple

from memjax.data.babi import ENV_VAR, DataError

HOME_VAR = "MEMJAX_HOME"
URL_VAR = "MEMJAX_BABI_URL"  # a mirror of the release archive, tried instead of the official URLs
ARCHIVE = "tasks_1-20_v1-2.tar.gz"
RELEASE = "tasks_1-20_v1-2"
SIZE = 15_719_851
SHA256 = "0364ebde659f14d11bc21744516c5ec49d3d06cb692733f66680771244998898"
URLS = ("https://dl.fbaipublicfiles.com/babi/tasks_1-20_v1-2.tar.gz",
        "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz")
VARIANTS = ("en", "en-10k", "hn", "hn-10k", "shuffled", "shuffled-10k", "en-valid", "en-valid-10k")
# What an unpacked release must hold (relative to its top folder) to be installed.
LAYOUT = ("en/qa1_single-supporting-fact_train.txt", "en/qa1_single-supporting-fact_test.txt")
_STAGING = ".babi-download-"
_IMPORT_HINT = f"fetch {ARCHIVE} where there is internet access and run 'memjax data import FILE'"

DIALOG_VAR = "MEMJAX_DIALOG_DATA"  # a dialog-bAbI-tasks folder, read instead of the data home's
DIALOG_ARCHIVE = "dialog-bAbI-tasks.tgz"
DIALOG_RELEASE = "dialog-bAbI-tasks"
DIALOG_SIZE: int | None = 3_032_766  # None: not checked
DIALOG_URLS = ("http://www.thespermwhale.com/jaseweston/babi/dialog-bAbI-tasks.tgz",)
# The md5s of the released files (the archive's sha256 is not known): what an unpacked archive's
# dialog-bAbI-tasks/ must hold, each file byte for byte. Other files in the folder are allowed.
DIALOG_MD5 = {
    "LICENSE.txt": "f74ec0d62152b70c154a2ce91c4c7550",
    "README.txt": "9aefecf411ed4fdc1b4e38ab85512b32",
    "dialog-babi-candidates.txt": "87aaef08e9aadd3b9ef467d69f281ce1",
    "dialog-babi-kb-all.txt": "082bbb1f2781a0a9f3e954893bde43c0",
    "dialog-babi-task1-API-calls-dev.txt": "293783b52a7a4ce0dedee70cfb14f8a4",
    "dialog-babi-task1-API-calls-trn.txt": "537d07736f811a7ff3680360837ef460",
    "dialog-babi-task1-API-calls-tst-OOV.txt": "bbc3e4b0e4751d5761e1c406c5f6d4d5",
    "dialog-babi-task1-API-calls-tst.txt": "a680176317faf7304a7ee4722dd7f77e",
    "dialog-babi-task2-API-refine-dev.txt": "2fef87d2ff19083d27121f4d0e9026fe",
    "dialog-babi-task2-API-refine-trn.txt": "6625c44d7ce096e5ee68198794ffdd78",
    "dialog-babi-task2-API-refine-tst-OOV.txt": "953caf82cb795158203a423e8f73d1a8",
    "dialog-babi-task2-API-refine-tst.txt": "636c13feb024cbea7d77cd8786cbffbd",
    "dialog-babi-task3-options-dev.txt": "2aed666d393c091e80b25d85ba8c55f0",
    "dialog-babi-task3-options-trn.txt": "0b1cb6b200fc771beaa310b8bbcc8bcd",
    "dialog-babi-task3-options-tst-OOV.txt": "6ff9c7b89afccb562a771334931483a5",
    "dialog-babi-task3-options-tst.txt": "132bd162b6b4e3f8d7856965059a746b",
    "dialog-babi-task4-phone-address-dev.txt": "7782595203714cf340605a70e7c69620",
    "dialog-babi-task4-phone-address-trn.txt": "37df442f2286de76bf7154b95cf1357e",
    "dialog-babi-task4-phone-address-tst-OOV.txt": "53c2ad0c35608ef55a7887dd53dc57cc",
    "dialog-babi-task4-phone-address-tst.txt": "8d9eab9d1301924db720d9f35c76c582",
    "dialog-babi-task5-full-dialogs-dev.txt": "d3e49785cf308db94e75d6f03079ce7e",
    "dialog-babi-task5-full-dialogs-trn.txt": "8ac2bf41bb5f7a9564e1ac18ffaab1e5",
    "dialog-babi-task5-full-dialogs-tst-OOV.txt": "ef14672057c3a353510d9ec6367e72b9",
    "dialog-babi-task5-full-dialogs-tst.txt": "b46e67371c45df0adf9b2df4d59af92a",
    "dialog-babi-task6-dstc2-candidates.txt": "c33a630018c93d7fe6bd22f781f983c4",
    "dialog-babi-task6-dstc2-dev.txt": "343e6ab57bed9af4a4b75de7eabb19d5",
    "dialog-babi-task6-dstc2-trn.txt": "330f90509d484d50138e308ce887b458",
    "dialog-babi-task6-dstc2-tst.txt": "429615f2b1a0672bfc71f9fcb107b952",
}
_DIALOG_HINT = (f"fetch {DIALOG_ARCHIVE} where there is internet access and run "
                "'memjax data import FILE --dataset dialog-babi'")


class DownloadError(DataError):
    """A download, import or unpack that failed; the message is one line, and nothing was kept."""


def home() -> Path:
    """memjax's home folder: ``$MEMJAX_HOME``, else ``$XDG_CACHE_HOME/memjax``, else ``~/.cache/memjax``."""
    value = os.environ.get(HOME_VAR)
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "memjax"


def data_home() -> Path:
    """The folder that holds downloaded data sets: ``<home>/data``."""
    return home() / "data"


def release_dir() -> Path:
    """Where the bAbI release lives in the data home (whether or not it is there yet)."""
    return data_home() / RELEASE


def is_release(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an unpacked bAbI release (the files of :data:`LAYOUT`)."""
    return all((Path(folder) / name).is_file() for name in LAYOUT)


def variants(root: str | os.PathLike) -> dict[str, int]:
    """The release variants present under ``root``, each with its number of task files."""
    root = Path(root)
    return {v: len(list((root / v).glob("qa*.txt"))) for v in VARIANTS if (root / v).is_dir()}


def mirror_urls() -> tuple[str, ...]:
    """The URLs a download tries in turn: ``$MEMJAX_BABI_URL`` if set, else the official URL and its fallback."""
    value = os.environ.get(URL_VAR, "").strip()
    return (value,) if value else URLS


def ensure_release() -> Path:
    """The release folder of the data home, downloaded first (saying so in one line on stderr) if missing.

    Raises:
        DownloadError: the download failed (one line that also names ``--data`` and ``$MEMJAX_DATA``).
    """
    target = release_dir()
    if is_release(target):
        return target
    urls = mirror_urls()
    label = (f"memjax: no --data or ${ENV_VAR}: downloading bAbI once ({SIZE / 1e6:.1f} MB) from {urls[0]} "
             f"into {data_home()}")
    try:
        return download(urls, SHA256, label=label, steps=False)
    except DownloadError as e:
        raise DownloadError(f"{e}; or pass --data DIR or set {ENV_VAR} to a bAbI {RELEASE} folder") from None


def download(urls: tuple[str, ...] | list[str] | None = None, sha256: str = SHA256, label: str | None = None,
             steps: bool = True) -> Path:
    """Downloads the release archive (the first of ``urls`` that works), verifies it and installs it.

    Args:
        urls: where to fetch the archive from, in turn (default: :func:`mirror_urls`).
        sha256: the archive's expected sha256 (default: the official release's).
        label: a line announced on stderr before connecting (default: one announced when the transfer
            starts, followed by plain progress lines when stderr is not a terminal).
        steps: print progress lines at each quarter when stderr is not a terminal.

    Returns:
        The installed release folder (at once, without any network, when it is already there).

    Raises:
        DownloadError: no URL gave the archive, its checksum or layout is wrong, or unpacking failed.
    """
    target = release_dir()
    if is_release(target):
        return target
    _check_target(target)
    return _download(tuple(urls or mirror_urls()), sha256, label, steps, _BABI)


def import_archive(path: str | os.PathLike, sha256: str = SHA256) -> Path:
    """Verifies a release archive already on disk against ``sha256`` and installs it in the data home.

    Raises:
        DownloadError: the file is missing, its checksum or layout is wrong, or it cannot be unpacked.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DownloadError(f"{path}: file not found")
    target = release_dir()
    if is_release(target):
        return target
    _check_target(target)
    got = _sha256(path)
    if got != sha256.lower():
        raise DownloadError(f"{path}: sha256 is {got}, not {sha256.lower()}: not the bAbI release archive "
                            "(pass --sha256 HEX for an archive of your own)")
    with _Staging() as staging:
        return staging.install(path)


def dialog_dir() -> Path:
    """Where dialog bAbI lives in the data home (whether or not it is there yet)."""
    return data_home() / DIALOG_RELEASE


def is_dialog_release(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds every file of :data:`DIALOG_MD5` (their contents are not read)."""
    return all((Path(folder) / name).is_file() for name in DIALOG_MD5)


def check_dialog_release(folder: str | os.PathLike) -> None:
    """Checks that ``folder`` holds every file of :data:`DIALOG_MD5` with its md5.

    Raises:
        DownloadError: one line naming the first file that is missing or differs.
    """
    bad = _dialog_mismatch(Path(folder))
    if bad:
        raise DownloadError(f"{Path(folder) / bad[0]}: {bad[1]}")


def dialog_root(flag: str | None = None) -> Path:
    """The ``dialog-bAbI-tasks`` folder: ``flag`` if given, else ``$MEMJAX_DIALOG_DATA``, else the data
    home's (downloaded on first use).

    Raises:
        DataError: ``flag`` or ``$MEMJAX_DIALOG_DATA`` is not a folder holding ``dialog-babi-candidates.txt``,
            or the first-use download failed.
    """
    value = flag or os.environ.get(DIALOG_VAR)
    if not value:
        return ensure_dialog_release()
    root = Path(value).expanduser()
    source = "" if flag else f" (${DIALOG_VAR})"
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found{source} (expected a dialog bAbI {DIALOG_RELEASE} folder)")
    if not (root / "dialog-babi-candidates.txt").is_file():
        raise DataError(f"{root}: not a dialog bAbI {DIALOG_RELEASE} folder{source}: "
                        "it has no dialog-babi-candidates.txt")
    return root


def ensure_dialog_release() -> Path:
    """The dialog bAbI folder of the data home, downloaded first (saying so in one line on stderr) if missing.

    Raises:
        DownloadError: the download failed (one line that also names ``$MEMJAX_DIALOG_DATA``).
    """
    target = dialog_dir()
    if is_dialog_release(target):
        return target
    size = f" ({DIALOG_SIZE / 1e6:.1f} MB)" if DIALOG_SIZE else ""
    label = (f"memjax: no ${DIALOG_VAR}: downloading dialog bAbI once{size} from {DIALOG_URLS[0]} "
             f"into {data_home()}")
    try:
        return download_dialog(label=label, steps=False)
    except DownloadError as e:
        raise DownloadError(f"{e}; or set {DIALOG_VAR} to a dialog bAbI {DIALOG_RELEASE} folder") from None


def download_dialog(urls: tuple[str, ...] | list[str] | None = None, label: str | None = None,
                    steps: bool = True) -> Path:
    """Downloads the dialog bAbI archive (the first of ``urls`` that works, default :data:`DIALOG_URLS`),
    checks its size (:data:`DIALOG_SIZE`) and its files' md5s (:data:`DIALOG_MD5`), and installs it.
    ``label`` and ``steps`` are as for :func:`download`.

    Returns:
        The installed folder (at once, without any network, when it is already there).

    Raises:
        DownloadError: no URL gave the archive, its size or a file is wrong, or unpacking failed.
    """
    target = dialog_dir()
    if is_dialog_release(target):
        return target
    _check_target(target, _DIALOG)
    return _download(tuple(urls or DIALOG_URLS), None, label, steps, _DIALOG)


def import_dialog_archive(path: str | os.PathLike) -> Path:
    """Checks a dialog bAbI archive already on disk (size, then each file's md5) and installs it.

    Raises:
        DownloadError: the file is missing, its size or a file is wrong, or it cannot be unpacked.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DownloadError(f"{path}: file not found")
    target = dialog_dir()
    if is_dialog_release(target):
        return target
    _check_target(target, _DIALOG)
    _check_size(path, str(path))
    with _Staging() as staging:
        return staging.install(path, _DIALOG)


def command(args) -> int:
    """Runs ``memjax data download|import|list`` (the command line's parsed ``args``); returns the exit status."""
    if args.data_command == "list":
        return _list()
    if getattr(args, "dataset", "babi") == "dialog-babi":
        return _dialog_command(args)
    if args.data_command == "import":
        root = import_archive(args.file, args.sha256 or SHA256)
    else:
        root = download([args.url] if args.url else None, args.sha256 or SHA256)
    name = getattr(args, "set", None) or "all"
    if name == "all":
        print(f"bAbI {RELEASE} ({', '.join(variants(root)) or 'no variants'}): {root}")
        return 0
    if not (root / name).is_dir():
        raise DownloadError(f"{root / name}: not found (this copy of bAbI holds: {', '.join(variants(root)) or 'none'})")
    print(f"bAbI {name}: {root / name}")
    return 0


def _dialog_command(args) -> int:
    if args.sha256:
        raise DownloadError("--sha256 is for bAbI: dialog bAbI is checked by its size and its files' md5s")
    if getattr(args, "set", "all") != "all":
        raise DownloadError("--set is for bAbI: dialog bAbI has no variants")
    if args.data_command == "import":
        root = import_dialog_archive(args.file)
    else:
        root = download_dialog([args.url] if args.url else None)
    print(f"dialog bAbI {DIALOG_RELEASE}: {root}")
    return 0


def _list() -> int:
    root = release_dir()
    print(f"memjax data home: {data_home()}")
    if not is_release(root):
        print(f"bAbI {RELEASE}: not there (memjax data download, or memjax data import FILE)")
    else:
        print(f"bAbI {RELEASE}: {root}")
        present = variants(root)
        for v in VARIANTS:
            print(f"  {v:<13} {f'{present[v]} files' if v in present else 'missing':<10} "
                  f"{root / v if v in present else ''}".rstrip())
    dialog = dialog_dir()
    if is_dialog_release(dialog):
        print(f"dialog bAbI {DIALOG_RELEASE}: {dialog}")
    else:
        print(f"dialog bAbI {DIALOG_RELEASE}: not there (memjax data download --dataset dialog-babi, "
              "or memjax data import FILE --dataset dialog-babi)")
    if os.environ.get(ENV_VAR):
        print(f"note: {ENV_VAR}={os.environ[ENV_VAR]} is set: commands without --data read that folder instead")
    if os.environ.get(DIALOG_VAR):
        print(f"note: {DIALOG_VAR}={os.environ[DIALOG_VAR]} is set: dialog bAbI is read from that folder instead")
    return 0


class _Unreachable(Exception):
    """The archive could not be had from one URL (no connection, an HTTP error): the next may work."""


class _Kind(NamedTuple):
    """What differs between the releases: the name in messages, the archive's file name, the top folder
    (in the archive and in the data home), what to do offline, what a bad archive is not, whether a
    folder holds the release, and the check of an unpacked top folder (DownloadError naming the file)."""

    name: str
    archive: str
    release: str
    hint: str
    what: str
    present: Callable[[Path], bool]
    check: Callable[[Path, Path], None]

    def target(self) -> Path:
        return data_home() / self.release


def _check_babi(top: Path, archive: Path) -> None:
    if not is_release(top):
        missing = next(n for n in LAYOUT if not (top / n).is_file())
        raise DownloadError(f"{archive.name} does not hold the bAbI release: {RELEASE}/{missing} is missing")


def _check_dialog(top: Path, archive: Path) -> None:
    bad = _dialog_mismatch(top)
    if bad and bad[1] == "file not found":
        raise DownloadError(f"{archive.name} does not hold the dialog bAbI release: "
                            f"{DIALOG_RELEASE}/{bad[0]} is missing")
    if bad:
        raise DownloadError(f"{archive.name}: {DIALOG_RELEASE}/{bad[0]}: {bad[1]}: not the released file "
                            "(nothing was kept)")


_BABI = _Kind("bAbI", ARCHIVE, RELEASE, _IMPORT_HINT, "a bAbI .tar.gz archive", is_release, _check_babi)
_DIALOG = _Kind("dialog bAbI", DIALOG_ARCHIVE, DIALOG_RELEASE, _DIALOG_HINT, "a dialog bAbI .tgz archive",
                is_dialog_release, _check_dialog)


def _dialog_mismatch(folder: Path) -> tuple[str, str] | None:
    """The first file of :data:`DIALOG_MD5` that ``folder`` lacks or holds with another md5, and why."""
    for name, md5 in DIALOG_MD5.items():
        path = folder / name
        if not path.is_file():
            return name, "file not found"
        with open(path, "rb") as f:
            got = hashlib.file_digest(f, "md5").hexdigest()
        if got != md5:
            return name, f"md5 is {got}, not {md5}"
    return None


def _download(urls: tuple[str, ...], sha256: str | None, label: str | None, steps: bool, kind: _Kind) -> Path:
    """Fetches the archive from the first of ``urls`` that works into a staging folder and installs it."""
    with _Staging() as staging:
        failures = []
        for i, url in enumerate(urls):
            if i:
                print(f"memjax: {failures[-1][0]} failed ({failures[-1][1]}); trying {url}", file=sys.stderr,
                      flush=True)
            try:
                archive = _fetch(url, sha256, staging.path, label if i == 0 else None, steps, kind)
                break
            except _Unreachable as e:
                failures.append((url, str(e)))
        else:
            tried = " or ".join(f"{u} ({why})" for u, why in failures)
            raise DownloadError(f"cannot download {kind.name} from {tried}: {kind.hint}")
        if kind is _DIALOG:
            _check_size(archive, f"{url}: the download")
        return staging.install(archive, kind)


def _check_size(archive: Path, what: str) -> None:
    """Raises DownloadError unless ``archive`` has :data:`DIALOG_SIZE` bytes (when that is known)."""
    got = archive.stat().st_size
    if DIALOG_SIZE is not None and got != DIALOG_SIZE:
        raise DownloadError(f"{what} is {got:,} bytes, not {DIALOG_SIZE:,}: not the dialog bAbI release archive "
                            f"{DIALOG_ARCHIVE} (nothing was kept)")


def _check_target(target: Path, kind: _Kind | None = None) -> None:
    if target.exists() and any(target.iterdir()):
        raise DownloadError(f"{target} exists but is not a complete {(kind or _BABI).name} release: "
                            "remove it and run again")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _reason(e: BaseException) -> str:
    """A short reason for a requests exception: the OS error's text when there is one."""
    text = str(e)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1).strip().rstrip(".,")
    for pattern in (r"IncompleteRead\([^)]*\)", r"Read timed out", r"Connection broken: ([^'\")]+)"):
        m = re.search(pattern, text)
        if m:
            return m.group(0)
    return type(e).__name__


def _fetch(url: str, sha256: str | None, folder: Path, label: str | None, steps: bool,
           kind: _Kind | None = None) -> Path:
    """Downloads ``url`` into ``folder`` with pooch, which verifies ``sha256`` (unless None) before keeping the file."""
    import pooch
    import requests

    kind = kind or _BABI
    meter = _Meter(label or f"memjax: downloading {kind.name} from {url}", announce=label is not None, steps=steps)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # pooch announces each download at INFO: the meter says it once
    try:
        downloader = pooch.HTTPDownloader(progressbar=meter, chunk_size=1 << 16, timeout=30)
        return Path(pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None, fname=kind.archive,
                                   path=folder, downloader=downloader))
    except requests.exceptions.HTTPError as e:
        meter.abort()
        status = e.response.status_code if e.response is not None else "?"
        reason = e.response.reason if e.response is not None else ""
        raise _Unreachable(f"HTTP {status} {reason}".strip()) from None
    except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema, requests.exceptions.InvalidURL):
        meter.abort()
        raise DownloadError(f"{url}: not an http:// or https:// URL") from None
    except requests.exceptions.RequestException as e:
        meter.abort()
        if meter.started:
            raise DownloadError(f"the download from {url} broke off after {_size(meter.done)} of "
                                f"{_size(meter.total)} ({_reason(e)}); nothing was kept: run the command "
                                f"again, or {kind.hint}") from None
        raise _Unreachable(_reason(e)) from None
    except ValueError as e:
        meter.abort()
        got = re.search(r"but got ([0-9a-fA-F]+)", str(e))
        if got:
            raise DownloadError(f"{url}: the download's sha256 is {got.group(1)}, not {sha256}: not the "
                                f"{kind.name} release archive (nothing was kept)") from None
        raise DownloadError(f"{url}: {e}") from None
    except BaseException:
        meter.abort()
        raise
    finally:
        logger.setLevel(level)


class _Meter:
    """A transfer's progress in pooch's progress-bar interface (``total``, ``update``, ``reset``, ``close``).

    On a terminal: one line on stderr, rewritten in place. Otherwise: the label (at once if ``announce``,
    else when the transfer starts) and, with ``steps``, a plain line at each quarter.
    """

    def __init__(self, label: str, announce: bool, steps: bool):
        self.label, self.steps = label, steps
        self.live = sys.stderr.isatty()
        self.started, self.done, self._total = False, 0, 0
        self._quarter, self._drawn, self._final, self._open = 1, 0.0, False, False
        if announce or self.live:
            self._write(label[:shutil.get_terminal_size().columns - 1] if self.live else label + "\n")
            self._open = self.live

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self.started, self._total = True, int(value or 0)
        if not self.live and not self._open and self.steps:
            size = f" ({_size(self._total)})" if self._total else ""
            self._write(f"{self.label}{size}\n")
            self._open = True  # announced

    def update(self, n: int) -> None:
        self.done = self._total if self._final else self.done + n
        if self._total:
            self.done = min(self.done, self._total)
        if self.live:
            now = time.monotonic()
            if self._final or now - self._drawn > 0.1:
                self._drawn = now
                self._write(f"\r\033[K{self._line()}")
        elif self.steps and self._total:
            quarter = min(4, self.done * 4 // self._total)
            if quarter >= self._quarter:  # one line however many quarters a chunk crossed
                self._write(f"memjax:   {self._amount()}\n")
                self._quarter = quarter + 1

    def reset(self) -> None:
        self._final = True  # pooch's last call: update(total)

    def close(self) -> None:
        if self.live and self._open:
            self._write("\n")
            self._open = False

    def abort(self) -> None:
        """Ends the terminal line, if one is open, before an error is printed."""
        self.close()

    def _line(self) -> str:
        """The terminal line: the label and the amount, the amount first when both do not fit."""
        width = shutil.get_terminal_size().columns - 1
        line = f"{self.label}: {self._amount()}"
        if len(line) > width:
            line = f"memjax: {self._amount()} {self.label.removeprefix('memjax: ')}"[:width]
        return line

    def _amount(self) -> str:
        if not self._total:
            return _size(self.done)
        return f"{100 * self.done // self._total:3d}% ({_size(self.done)} of {_size(self._total)})"

    @staticmethod
    def _write(text: str) -> None:
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()


class _Staging:
    """A hidden folder beside the data home for one download: removed on exit, with any folders it made."""

    def __enter__(self) -> _Staging:
        root = home()
        self._made = _missing_parents(root)
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root)
        self.path = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{_host()}-{os.getpid()}-", dir=root))
        self._installed = False
        return self

    def install(self, archive: Path, kind: _Kind | None = None) -> Path:
        """Unpacks ``archive`` here, checks it (bAbI's layout, dialog bAbI's md5s), then renames the
        release into the data home."""
        kind = kind or _BABI
        unpacked = self.path / "unpacked"
        unpacked.mkdir()
        _extract(archive, unpacked, kind.what)
        top = unpacked / kind.release
        kind.check(top, archive)
        target = kind.target()
        made = _missing_parents(target.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(top, target)  # atomic; replaces only an empty folder
        except OSError as e:
            if not kind.present(target):  # else another process installed it first: use that copy
                _remove_empty(made)
                raise DownloadError(f"cannot move the release into {target}: {e.strerror or e}") from None
        self._installed = True
        return target

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if not self._installed:
            _remove_empty(self._made)


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _remove_stale(root: Path) -> None:
    """Removes the staging folders of downloads that were killed before they could clean up.

    A folder is stale when its process (on this host) is gone, or when it is a day old (a home shared
    between hosts: another host's process cannot be asked).
    """
    for p in root.glob(f"{_STAGING}*"):
        host, _, rest = p.name[len(_STAGING):].rpartition("-")[0].rpartition("-")
        pid = int(rest) if rest.isdigit() else None
        try:
            old = time.time() - p.stat().st_mtime > 86400
        except OSError:
            continue
        if old or (host == _host() and pid is not None and pid != os.getpid() and not _alive(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def _extract(archive: Path, folder: Path, what: str = "a bAbI .tar.gz archive") -> None:
    """Unpacks a tar archive into ``folder``, refusing absolute paths, ``..`` and links out of it."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise DownloadError(f"{archive.name}: unsafe path in the archive: {m.name!r}")
                if not (m.isfile() or m.isdir()):
                    raise DownloadError(f"{archive.name}: the archive holds a link or special file: {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(folder, members=members, filter="data")
            else:  # Python < 3.11.4: the checks above are the filter
                tar.extractall(folder, members=members)
    except DownloadError:
        raise
    except tarfile.ReadError as e:
        why = "not a tar archive" if "opened successfully" in str(e) else " ".join(str(e).split())
        raise DownloadError(f"cannot unpack {archive.name}: {why} (not {what}?)") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or " ".join(str(e).split()) or type(e).__name__
        raise DownloadError(f"cannot unpack {archive.name}: {why} (a damaged archive?)") from None
