"""A small dialog bAbI-style task written in the release's format, for tests that need no data files."""

from __future__ import annotations

from pathlib import Path

from memjax.data.dialog import DialogDataset, parse_candidates, parse_dialogs, parse_kb, vectorize_dialogs

# eight training restaurants, each in one dialog; resto_c (thai food in rome) is in no training dialog
TRAIN = [("thai", "paris", "resto_a"), ("french", "rome", "resto_b"), ("indian", "tokyo", "resto_d"),
         ("korean", "london", "resto_e"), ("thai", "tokyo", "resto_f"), ("french", "london", "resto_g"),
         ("indian", "paris", "resto_h"), ("korean", "rome", "resto_i")]
VALID = [("thai", "paris", "resto_a")]
TEST = [("french", "rome", "resto_b")]
OOV = [("thai", "rome", "resto_c")]
KB = "".join(f"{3 * i + 1} {r} R_cuisine {c}\n{3 * i + 2} {r} R_location {p}\n{3 * i + 3} {r} R_phone {r}_phone\n"
             for i, (c, p, r) in enumerate(sorted(set(TRAIN + OOV), key=lambda d: d[2])))


def dialog(cuisine: str, city: str, resto: str) -> str:
    return (f"1 hello\thello what can i help you with today\n"
            f"2 i'd like {cuisine} food in {city}\tok let me look into some options for you\n"
            f"3 <SILENCE>\tapi_call {cuisine} {city}\n"
            f"4 {resto} R_cuisine {cuisine}\n"
            f"5 {resto} R_location {city}\n"
            f"6 {resto} R_phone {resto}_phone\n"
            f"7 <SILENCE>\twhat do you think of this option: {resto}\n"
            f"8 the phone number please\there it is {resto}_phone\n")




def write_task(folder: Path) -> dict[str, Path]:
    """Writes train/dev/test/OOV dialogs, the candidates (every bot utterance) and the knowledge base."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, dialogs in (("train", TRAIN), ("valid", VALID), ("test", TEST), ("oov", OOV)):
        files[name] = folder / f"{name}.txt"
        files[name].write_text("\n".join(dialog(*d) for d in dialogs))
    bots = []
    for d in TRAIN + OOV:
        for line in dialog(*d).splitlines():
            if "\t" in line and line.split("\t")[1] not in bots:
                bots.append(line.split("\t")[1])
    files["candidates"] = folder / "candidates.txt"
    files["candidates"].write_text("".join(f"1 {b}\n" for b in bots))
    files["kb"] = folder / "kb.txt"
    files["kb"].write_text(KB)
    return files


def write_release(folder: Path) -> Path:
    """The small task as dialog bAbI's task 1 in the release's file names (what ``--set dialog --data``
    reads)."""
    files = write_task(folder / "parts")
    names = {"train": "trn", "valid": "dev", "test": "tst", "oov": "tst-OOV"}
    for split, suffix in names.items():
        (folder / f"dialog-babi-task1-API-calls-{suffix}.txt").write_text(files[split].read_text())
    (folder / "dialog-babi-candidates.txt").write_text(files["candidates"].read_text())
    (folder / "dialog-babi-kb-all.txt").write_text(files["kb"].read_text())
    return folder


def small_task(folder: Path, memory_size: int | None = None) -> DialogDataset:
    files = write_task(folder)
    splits = {k: parse_dialogs(files[k]) for k in ("train", "valid", "test", "oov")}
    return vectorize_dialogs("small dialog task", 1, splits, parse_candidates(files["candidates"]),
                             parse_kb(files["kb"]), memory_size, files)
