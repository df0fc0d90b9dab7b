"""One run = one directory: results.csv, samples.csv, run.json, worker logs, later report.md.

Finished measurements reach disk at once: samples are appended as each case ends and results.csv
is rewritten atomically (temporary file, fsync, rename) after every case. An existing directory is
never reused.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from bench.schema import RESULT_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION, SchemaError, check_version


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path) -> RunDir:
        """Make a new, empty run directory; FileExistsError if anything is there already."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir()  # raises FileExistsError: never overwrite or mix runs
        run = cls(path)
        with open(run.samples_path, "w", newline="") as f:
            csv.writer(f).writerow(SAMPLE_COLUMNS)
        return run

    @property
    def results_path(self) -> Path:
        return self.path / "results.csv"

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.csv"

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    def append_samples(self, rows: list[tuple]) -> None:
        with open(self.samples_path, "a", newline="") as f:
            csv.writer(f).writerows(rows)
            f.flush()
            os.fsync(f.fileno())

    def write_results(self, rows: list[dict]) -> None:
        df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
        df["schema_version"] = SCHEMA_VERSION
        atomic_write(self.results_path, df.to_csv(index=False))

    def write_meta(self, meta: dict) -> None:
        atomic_write(self.meta_path, json.dumps({"schema_version": SCHEMA_VERSION, **meta}, indent=2))


    def compress_samples(self) -> None:
        """samples.csv -> samples.csv.gz (atomic), for a finished run: raw samples compress ~4x."""
        gz = self.path / "samples.csv.gz"
        tmp = gz.with_suffix(".gz.tmp")
        with open(self.samples_path, "rb") as src, gzip.open(tmp, "wb", compresslevel=9) as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, gz)
        self.samples_path.unlink()


def read_meta(path: Path) -> dict:
    f = Path(path) / "run.json"
    if not f.is_file():
        raise SchemaError(f"{path} is not a run directory (no run.json)")
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise SchemaError(f"{f} is not valid JSON: {e}") from None
    check_version(meta.get("schema_version"), str(f))
    return meta


def read_results(path: Path) -> pd.DataFrame:
    read_meta(path)
    f = Path(path) / "results.csv"
    if not f.is_file():
        raise SchemaError(f"{path} has no results.csv")
    df = pd.read_csv(f, keep_default_na=False, na_values=[""])
    if "schema_version" not in df.columns:
        raise SchemaError(f"{f} has no schema_version column")
    for v in set(df["schema_version"]):
        check_version(int(v), str(f))
    return df


def read_samples(path: Path) -> pd.DataFrame:
    path = Path(path)
    for name in ("samples.csv", "samples.csv.gz"):
        if (path / name).is_file():
            df = pd.read_csv(path / name)
            if "schema_version" not in df.columns:
                raise SchemaError(f"{path / name} has no schema_version column")
            for v in set(df["schema_version"]):
                check_version(int(v), str(path / name))
            return df
    raise SchemaError(f"{path} has no samples.csv(.gz)")
