"""Dialog bAbI in the data home: ``memjax data download|import --dataset dialog-babi``, ``data list``,
``dialog_root``, against test_download's local HTTP server.

The fake release has the 28 real file names with contents of its own: the commands run with
``DIALOG_MD5`` (and ``DIALOG_SIZE``) set to the fake's in the command's process. The real table is
checked against the real files (``dialog_data``) at the end.
"""

import hashlib
import tarfile

import pytest

from memjax.data import download
from test_download import _archive, _Handler, JUNK, listing, memjax, one_error_line, serving

TOP = "dialog-bAbI-tasks"
FILES = {name: f"1 hello\tfake {name}\n" for name in download.DIALOG_MD5}
MD5 = {name: hashlib.md5(text.encode()).hexdigest() for name, text in FILES.items()}
RELEASE = {f"{TOP}/{name}": text for name, text in FILES.items()}
RELEASE[f"{TOP}/dialog-babi-task1-API-calls-trn-extra.txt"] = "another file: allowed\n"
ARCHIVE = _archive(RELEASE)
WRONG_NAME = "dialog-babi-task3-options-tst.txt"
WRONG_TEXT = "1 hello\tchanged\n"
WRONG = _archive({**RELEASE, f"{TOP}/{WRONG_NAME}": WRONG_TEXT})
MISSING = _archive({k: v for k, v in RELEASE.items() if k != f"{TOP}/README.txt"})


class _DialogHandler(_Handler):
    bodies = {"/dialog.tgz": ARCHIVE, "/wrong.tgz": WRONG, "/missing.tgz": MISSING, "/junk.tgz": JUNK}


@pytest.fixture(scope="module")
def server():
    yield from serving(_DialogHandler)


def setup(size):
    """Code for memjax(setup=...): the fake release's md5s, and the archive size expected."""
    return f"from memjax.data import download as d\nd.DIALOG_MD5 = {MD5!r}\nd.DIALOG_SIZE = {size!r}"


def test_download_lists_and_is_found(server, tmp_path, monkeypatch):
    home = tmp_path / "home"
    root = home / "data" / TOP
    r = memjax(["data", "download", "--dataset", "dialog-babi", "--url", f"{server}/dialog.tgz"], home,
               setup=setup(len(ARCHIVE)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"dialog bAbI {TOP}: {root}\n"
    assert "downloading dialog bAbI from" in r.stderr and "100%" in r.stderr
    assert listing(home) == ["data", f"data/{TOP}", *sorted(f"data/{n}" for n in RELEASE)]  # no staging left
    assert all((home / "data" / n).read_text() == text for n, text in RELEASE.items())
    r = memjax(["data", "list"], home)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "bAbI tasks_1-20_v1-2: not there (memjax data download, or memjax data import FILE)"
    assert lines[2:] == [f"dialog bAbI {TOP}: {root}"]
    r = memjax(["data", "list"], home, MEMJAX_DIALOG_DATA=str(tmp_path))
    assert r.stdout.splitlines()[-1] == (f"note: MEMJAX_DIALOG_DATA={tmp_path} is set: dialog bAbI is read from "
                                         "that folder instead")
    # again: already there, without network (a closed port) and without the fake's md5s
    r = memjax(["data", "download", "--dataset", "dialog-babi", "--url", "http://127.0.0.1:9/x.tgz"], home)
    assert r.returncode == 0 and r.stdout == f"dialog bAbI {TOP}: {root}\n" and not r.stderr, r.stderr
    monkeypatch.setenv("MEMJAX_HOME", str(home))
    monkeypatch.delenv("MEMJAX_DIALOG_DATA", raising=False)
    monkeypatch.setattr(download, "DIALOG_URLS", ("http://127.0.0.1:9/x.tgz",))
    assert download.dialog_root() == root == download.ensure_dialog_release()


def test_an_empty_list_names_the_dialog_commands(tmp_path):
    r = memjax(["data", "list"], tmp_path / "nothing")
    assert r.returncode == 0 and r.stdout.splitlines()[2:] == [
        f"dialog bAbI {TOP}: not there (memjax data download --dataset dialog-babi, "
        "or memjax data import FILE --dataset dialog-babi)"]
    assert listing(tmp_path) == []


@pytest.mark.parametrize("how", ["download", "import"])
@pytest.mark.parametrize("existing", [True, False])
def test_a_wrong_file_is_one_line_and_nothing_is_kept(server, tmp_path, how, existing):
    home = tmp_path / "home"
    if existing:
        (home / "data").mkdir(parents=True)
        (home / "data" / "other").write_text("the user's\n")
    (tmp_path / "wrong.tgz").write_bytes(WRONG)
    before = listing(tmp_path)
    source = (["download", "--url", f"{server}/wrong.tgz"] if how == "download"
              else ["import", str(tmp_path / "wrong.tgz")])
    r = memjax(["data", *source, "--dataset", "dialog-babi"], home, setup=setup(len(WRONG)))
    archive = download.DIALOG_ARCHIVE if how == "download" else "wrong.tgz"
    got = hashlib.md5(WRONG_TEXT.encode()).hexdigest()
    one_error_line(r, f"{archive}: {TOP}/{WRONG_NAME}: md5 is {got}, not {MD5[WRONG_NAME]}: not the released file")
    assert listing(tmp_path) == before


@pytest.mark.parametrize("how", ["download", "import"])
def test_a_missing_file_is_one_line(server, tmp_path, how):
    home = tmp_path / "home"
    (tmp_path / "missing.tgz").write_bytes(MISSING)
    source = (["download", "--url", f"{server}/missing.tgz"] if how == "download"
              else ["import", str(tmp_path / "missing.tgz")])
    r = memjax(["data", *source, "--dataset", "dialog-babi"], home, setup=setup(len(MISSING)))
    one_error_line(r, f"does not hold the dialog bAbI release: {TOP}/README.txt is missing")
    assert listing(tmp_path) == ["missing.tgz"]


@pytest.mark.parametrize("how", ["download", "import"])
def test_a_wrong_size_is_one_line_before_unpacking(server, tmp_path, how):
    home = tmp_path / "home"
    (tmp_path / "junk.tgz").write_bytes(JUNK)
    source = (["download", "--url", f"{server}/junk.tgz"] if how == "download"
              else ["import", str(tmp_path / "junk.tgz")])
    r = memjax(["data", *source, "--dataset", "dialog-babi"], home)  # the real size: not a tar archive, not unpacked
    what = f"{server}/junk.tgz: the download" if how == "download" else str(tmp_path / "junk.tgz")
    one_error_line(r, f"{what} is {len(JUNK):,} bytes, not 3,032,766: not the dialog bAbI release archive")
    assert listing(tmp_path) == ["junk.tgz"]
    r = memjax(["data", *source, "--dataset", "dialog-babi"], home, setup=setup(None))  # size unknown: unpacked
    one_error_line(r, "cannot unpack", "not a tar archive (not a dialog bAbI .tgz archive?)")
    assert listing(tmp_path) == ["junk.tgz"]


def test_import_from_disk_and_the_flags_for_bAbI_only(tmp_path):
    home = tmp_path / "home"
    archive = tmp_path / download.DIALOG_ARCHIVE
    archive.write_bytes(ARCHIVE)
    r = memjax(["data", "import", str(archive), "--dataset", "dialog-babi", "--sha256", "0" * 64], home,
               setup=setup(len(ARCHIVE)))
    one_error_line(r, "--sha256 is for bAbI")
    r = memjax(["data", "download", "--dataset", "dialog-babi", "--set", "en"], home, setup=setup(len(ARCHIVE)))
    one_error_line(r, "--set is for bAbI")
    r = memjax(["data", "import", str(archive)], home)  # --dataset babi, the default: bAbI's sha256
    one_error_line(r, f"{archive}: sha256 is {hashlib.sha256(ARCHIVE).hexdigest()}", "not the bAbI release archive")
    assert listing(home) == []
    r = memjax(["data", "import", str(archive), "--dataset", "dialog-babi"], home, setup=setup(len(ARCHIVE)))
    assert r.returncode == 0 and r.stdout == f"dialog bAbI {TOP}: {home / 'data' / TOP}\n", r.stderr
    assert download.is_dialog_release(home / "data" / TOP)
    assert listing(home / "data") == sorted([TOP, *RELEASE])  # no bAbI
    r = memjax(["data", "import", str(tmp_path / "nope.tgz"), "--dataset", "dialog-babi"], tmp_path / "h2")
    one_error_line(r, "nope.tgz: file not found")


def test_a_half_filled_folder_in_the_data_home_is_one_line(tmp_path):
    home = tmp_path / "home"
    (home / "data" / TOP).mkdir(parents=True)
    (home / "data" / TOP / "README.txt").write_text("partial\n")
    (tmp_path / "d.tgz").write_bytes(ARCHIVE)
    r = memjax(["data", "import", str(tmp_path / "d.tgz"), "--dataset", "dialog-babi"], home, setup=setup(len(ARCHIVE)))
    one_error_line(r, f"{home / 'data' / TOP} exists but is not a complete dialog bAbI release: remove it")


def test_first_use_downloads_and_the_folder_can_be_named(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEMJAX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEMJAX_DIALOG_DATA", raising=False)
    monkeypatch.setattr(download, "DIALOG_URLS", (f"{server}/dialog.tgz",))
    monkeypatch.setattr(download, "DIALOG_MD5", MD5)
    monkeypatch.setattr(download, "DIALOG_SIZE", len(ARCHIVE))
    root = download.dialog_root()
    assert root == tmp_path / "home" / "data" / TOP and download.is_dialog_release(root)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"memjax: no $MEMJAX_DIALOG_DATA: downloading dialog bAbI once (0.0 MB) from {server}/dialog.tgz "
                   f"into {tmp_path / 'home' / 'data'}"]
    assert download.dialog_root() == root and not capsys.readouterr().err  # the second time: silent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "dialog-babi-candidates.txt").write_text("1 hello\n")
    monkeypatch.setenv("MEMJAX_DIALOG_DATA", str(elsewhere))
    assert download.dialog_root() == elsewhere and download.dialog_root(str(root)) == root  # the flag wins
    monkeypatch.setenv("MEMJAX_DIALOG_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(download.DataError, match=r"nowhere: data folder not found \(\$MEMJAX_DIALOG_DATA\)"):
        download.dialog_root()
    with pytest.raises(download.DataError, match=r"home: not a dialog bAbI dialog-bAbI-tasks folder: it has no "
                                                 r"dialog-babi-candidates.txt$"):
        download.dialog_root(str(tmp_path / "home"))


def test_a_failed_first_use_download_names_the_variable(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEMJAX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEMJAX_DIALOG_DATA", raising=False)
    monkeypatch.setattr(download, "DIALOG_URLS", (f"{server}/nope.tgz",))
    with pytest.raises(download.DownloadError) as e:
        download.dialog_root()
    assert str(e.value).startswith(f"cannot download dialog bAbI from {server}/nope.tgz (HTTP 404 Not Found): ")
    assert "memjax data import FILE --dataset dialog-babi" in str(e.value)
    assert str(e.value).endswith("; or set MEMJAX_DIALOG_DATA to a dialog bAbI dialog-bAbI-tasks folder")
    assert listing(tmp_path) == []


def test_the_help_names_the_dataset():
    r = memjax(["data", "download", "--help"], "unused")
    assert r.returncode == 0 and "--dataset {babi,dialog-babi}" in r.stdout and "dialog-bAbI-tasks.tgz" in r.stdout
    r = memjax(["data", "import", "--help"], "unused")
    assert r.returncode == 0 and "--dataset {babi,dialog-babi}" in r.stdout


def test_the_real_files_have_the_released_md5s(dialog_data, monkeypatch):
    monkeypatch.setenv("MEMJAX_DIALOG_DATA", str(dialog_data))
    assert download.dialog_root() == dialog_data
    download.check_dialog_release(dialog_data)  # the embedded table, unchanged
    assert len(download.DIALOG_MD5) == 28
    changed = dict(download.DIALOG_MD5, **{"dialog-babi-kb-all.txt": "0" * 32})
    monkeypatch.setattr(download, "DIALOG_MD5", changed)
    with pytest.raises(download.DownloadError,
                       match=r"dialog-babi-kb-all.txt: md5 is 082bbb1f2781a0a9f3e954893bde43c0, not 0{32}$"):
        download.check_dialog_release(dialog_data)


def test_an_archive_of_the_real_files_installs_with_the_embedded_table(dialog_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMJAX_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(download, "DIALOG_SIZE", None)  # an archive of our own: not the release's size
    archive = tmp_path / download.DIALOG_ARCHIVE
    with tarfile.open(archive, "w") as tar:  # uncompressed: quick
        for name in download.DIALOG_MD5:
            tar.add(dialog_data / name, f"{TOP}/{name}")
    root = download.import_dialog_archive(archive)
    assert root == tmp_path / "home" / "data" / TOP and sorted(p.name for p in root.iterdir()) == sorted(FILES)
    download.check_dialog_release(root)
