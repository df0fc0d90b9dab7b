"""One run = one directory: results.csv, samples.csv, rounds.csv, run.json, worker logs, report.md.

Finished measurements reach disk at once: samples and the round record are appended as each case
ends and results.csv is rewritten atomically (temporary file, fsync, rename) after every case.
An existing directory is never reused. The readers check what they read (schema version,
columns, types, statuses) and raise SchemaError with one line naming the file and the problem.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.rounds import Round
from bench.runmeta import RunMeta
from bench.schema import (
    PIPELINE_COLUMNS,
    PIPELINE_SAMPLE_COLUMNS,
    ROUND_COLUMNS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    SIZE_COLUMNS,
    STATUSES,
    TEXT_COLUMNS,
    SchemaError,
    check_version,
    required_columns,
    result_columns,
    upgrade_meta,
    upgrade_pipeline,
    upgrade_pipeline_result,
    upgrade_pipeline_samples,
    upgrade_results,
    upgrade_rounds,
    upgrade_samples,
)
from models.registry import size_columns


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


def append_csv(path: Path, rows: list[tuple]) -> None:
    """Rows appended and on disk (fsync) before this returns."""
    with open(path, "a", newline="") as f:  # pragma: no mutate (equivalent on POSIX)
        csv.writer(f).writerows(rows)
        f.flush()
        os.fsync(f.fileno())


def append_line(path: Path, line: str) -> None:
    """One line appended and on disk (fsync) before this returns."""
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


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
        append_csv(run.samples_path, [tuple(SAMPLE_COLUMNS)])
        append_csv(run.rounds_path, [tuple(ROUND_COLUMNS)])
        return run

    @property
    def results_path(self) -> Path:
        return self.path / "results.csv"

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.csv"

    @property
    def rounds_path(self) -> Path:
        return self.path / "rounds.csv"

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    def append_samples(self, rows: list[tuple]) -> None:
        append_csv(self.samples_path, rows)

    def append_rounds(self, rows: list[tuple]) -> None:
        append_csv(self.rounds_path, rows)

    def append_round(self, made: Round, call_ns: list[int]) -> None:
        """A finished round: its samples, then its rounds.csv row (a resume rebuilds a round from
        its samples, so those go to disk first)."""
        self.append_samples(made.sample_rows(call_ns))
        self.append_rounds([made.row()])

    def write_results(self, rows: list[dict]) -> None:
        """ValueError for a row whose keys are not the schema's (a misspelt key would otherwise
        leave a column empty); the size columns a row's model does not fill are left empty."""
        sizes = size_columns()
        columns = result_columns(sizes)
        want = set(columns) - {"schema_version", "run_id"}
        padded = set(SIZE_COLUMNS) | set(sizes)
        for r in rows:
            missing = sorted(want - set(r) - padded)
            extra = sorted(set(r) - want)
            if missing or extra:
                raise ValueError(
                    f"results row {r.get('impl')} {r.get('size')}: missing {missing}, unknown "
                    f"{extra}"
                )
        self.write_table(self.results_path, rows, columns)

    def write_table(self, path: Path, rows: list[dict], columns: dict[str, str]) -> None:
        """A table of this run (results.csv, pipeline.csv): its rows in the schema's columns, each
        with the schema's version and the run's id (the directory's name), written atomically."""
        df = pd.DataFrame(rows, columns=list(columns))
        df["schema_version"], df["run_id"] = SCHEMA_VERSION, self.path.name
        atomic_write(path, df.to_csv(index=False))

    def write_meta(self, meta: RunMeta) -> None:
        atomic_write(self.meta_path, json.dumps(meta.to_json(), indent=2))

    def start(self, meta: RunMeta) -> None:
        """A run (or a resumed part of one) starts: running, on disk."""
        meta.status = "running"
        self.write_meta(meta)

    def resumable(self, kind: str, needs: str) -> RunMeta:
        """The record of an unfinished run of this kind, written by this schema, with the file its
        rounds append to; SchemaError naming why not."""
        meta = read_meta(self.path)
        if meta.kind != kind:
            raise SchemaError(f"{self.path} is not a {kind} run (it is a {meta.kind})")
        if meta.schema_version != SCHEMA_VERSION:
            raise SchemaError(
                f"{self.path} was written by schema {meta.schema_version}; resume it with the "
                f"harness that made it (this one writes {SCHEMA_VERSION})"
            )
        if meta.status == "complete":
            raise SchemaError(f"{self.path} is complete; nothing to resume")
        if not (self.path / needs).is_file():
            raise SchemaError(f"{self.path} has no {needs} to append to")
        return meta

    def compress_samples(self) -> None:
        """samples.csv -> samples.csv.gz (atomic), for a finished run: raw samples compress ~4x."""
        gz = self.path / "samples.csv.gz"
        tmp = gz.with_suffix(".gz.tmp")
        with open(self.samples_path, "rb") as src, gzip.open(tmp, "wb", compresslevel=9) as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, gz)
        self.samples_path.unlink()


META_KEYS = {"run_id": str, "status": str, "settings": dict, "machine": dict}


def read_meta(path: Path) -> RunMeta:
    f = Path(path) / "run.json"
    if not f.is_file():
        raise SchemaError(f"{path} is not a run directory (no run.json)")
    try:
        raw = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SchemaError(f"{f} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise SchemaError(f"{f} is not a JSON object")
    check_version(raw.get("schema_version"), str(f))
    for key, kind in META_KEYS.items():
        if not isinstance(raw.get(key), kind):
            raise SchemaError(f"{f}: {key!r} is missing or not a {kind.__name__}")
    return RunMeta.from_json(upgrade_meta(raw))


def read_table(f: Path, columns: dict[str, str]) -> pd.DataFrame:
    """A CSV of this schema: exactly these columns, a known version, numbers where numbers go."""
    if not f.is_file():
        raise SchemaError(f"{f} is missing")
    if f.suffix == ".csv" and f.stat().st_size and not _ends_with_newline(f):
        raise SchemaError(f"{f} does not end with a line break: truncated")
    try:
        df = pd.read_csv(
            f, keep_default_na=False, na_values=[""], dtype={c: str for c in TEXT_COLUMNS}
        )
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{f} is empty (not even a header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, ValueError) as e:
        raise SchemaError(f"{f} is not a readable CSV ({str(e).splitlines()[0]})") from None
    versions = (
        {_int_or(v) for v in df["schema_version"].unique()}
        if "schema_version" in df.columns
        else set()
    )
    missing = [c for c in required_columns(columns, versions) if c not in df.columns]
    extra = [c for c in df.columns if c not in columns]
    if missing or extra:
        raise SchemaError(
            f"{f}: columns differ from schema {SCHEMA_VERSION}: missing {missing}, unknown {extra}"
        )
    for v in df["schema_version"].unique():
        check_version(_int_or(v), str(f))
    for col in df.columns:
        if col in TEXT_COLUMNS or col == "noisy":
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise SchemaError(
                f"{f}: column {col} has a non-numeric value {df[col].iloc[i]!r} (data row {i + 1})"
            )
        df[col] = num
    return df


def _ends_with_newline(f: Path) -> bool:
    with open(f, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _int_or(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return v


def read_results(path: Path) -> pd.DataFrame:
    read_meta(path)
    f = Path(path) / "results.csv"
    df = read_table(f, result_columns(size_columns()))
    bad = df[~df["status"].isin(list(STATUSES))]
    if not bad.empty:
        raise SchemaError(
            f"{f}: unknown status {bad['status'].iloc[0]!r} (allowed: {', '.join(STATUSES)})"
        )
    ok = df[df["status"] == "ok"]
    for col in ("median_s", "n_samples", "rounds", "flops_per_step", "steps_per_call"):
        empty = ok[ok[col].isna()]
        if not empty.empty:
            r = empty.iloc[0]
            raise SchemaError(f"{f}: ok row {r['impl']} {r['size']} has no {col} (truncated?)")
    df["noisy"] = df["noisy"].astype(str).eq("True")
    return upgrade_results(df, result_columns(size_columns()))


def _samples_file(path: Path) -> Path:
    for name in ("samples.csv", "samples.csv.gz"):
        if (Path(path) / name).is_file():
            return Path(path) / name
    raise SchemaError(f"{path} has no samples.csv(.gz)")


def read_samples(path: Path) -> pd.DataFrame:
    return upgrade_samples(read_table(_samples_file(path), SAMPLE_COLUMNS))


def read_rounds(path: Path) -> pd.DataFrame:
    return upgrade_rounds(read_table(Path(path) / "rounds.csv", ROUND_COLUMNS))


def read_pipeline(path: Path) -> pd.DataFrame:
    """A probe's pipeline.csv, in the current schema."""
    table = read_table(Path(path) / "pipeline.csv", PIPELINE_COLUMNS)
    if "nodes" in table.columns:
        return upgrade_pipeline(table)
    nnodes = read_meta(path).settings.get("nnodes", 1)
    return upgrade_pipeline(table, nnodes if isinstance(nnodes, int) and nnodes > 0 else 1)


def read_pipeline_samples(path: Path) -> pd.DataFrame:
    return upgrade_pipeline_samples(
        read_table(Path(path) / "pipeline_samples.csv", PIPELINE_SAMPLE_COLUMNS)
    )


def read_run(
    path: Path, samples: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, RunMeta]:
    """(results, rounds, samples, meta), checked against each other: every ok row has its rounds.
    samples=False: the raw samples are not read (a report does not need them); None in their place."""
    meta = read_meta(path)
    results, rounds = read_results(path), read_rounds(path)
    samples = read_samples(path) if samples else None
    have = set(zip(rounds["impl"], rounds["size"], strict=True))
    for r in results[results["status"] == "ok"].itertuples():
        if (r.impl, r.size) not in have:
            raise SchemaError(
                f"{Path(path) / 'rounds.csv'} has no rounds of ok case {r.impl} {r.size} "
                "(truncated?)"
            )
    extra = have - set(zip(results["impl"], results["size"], strict=True))
    if extra:
        impl, size = sorted(extra)[0]
        raise SchemaError(
            f"{Path(path) / 'results.csv'} has no row for {impl} {size}, which rounds.csv has "
            "(truncated?)"
        )
    return results, rounds, samples, meta


def unit_medians(rounds: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(impl, size) -> the per-process medians (seconds per step) in round order: the unit of
    replication, base rounds first."""
    if "round" in rounds.columns:  # rounds.csv always has it; hand-made frames may not
        rounds = rounds.sort_values("round", kind="stable")
    return {
        k: g["median_s"].to_numpy(float) for k, g in rounds.groupby(["impl", "size"], sort=False)
    }


def unit_series(rounds: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    """(impl, size) -> the per-process medians indexed by round: two rows' processes of one round ran
    in the same stretch of the run (bench/report/fits.paired_diff_ci pairs them)."""
    return {
        k: g.set_index("round")["median_s"].astype(float)
        for k, g in rounds.groupby(["impl", "size"], sort=False)
    }


def slow_process_share(results: pd.DataFrame, rounds: pd.DataFrame, control=frozenset()) -> float:
    """bench/stats.slow_share over the processes of a run's ok rows (those of the `control`
    implementations left out)."""
    from bench.stats import slow_share

    ok = results[(results["status"] == "ok") & ~results["impl"].isin(control)]
    keys = set(zip(ok["impl"], ok["size"], strict=True))
    return slow_share(m for k, m in unit_medians(rounds).items() if k in keys)


def base_rounds(meta: RunMeta) -> int | None:
    """The rounds every case got before any extra ones (bench/stats.spread: a row with no more
    processes than these uses them all), or None when run.json does not say."""
    rounds = meta.settings.get("rounds")
    return int(rounds) if rounds is not None else None


def _rewrite_csv(path: Path, df: pd.DataFrame) -> None:
    text = df.to_csv(index=False)
    if path.suffix == ".gz":
        tmp = path.with_suffix(".gz.tmp")
        with gzip.open(tmp, "wt", compresslevel=9, newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    else:
        atomic_write(path, text)


def upgrade_run(path: Path) -> list[Path]:
    """Rewrite a run directory (a sweep or a probe) in the current schema, file by file, through
    the readers' own upgrade chain (bench/schema.py); returns the files rewritten."""
    path = Path(path)
    meta = read_meta(path)
    if (path / "pipeline.csv").is_file():
        tables = [(path / "pipeline.csv", read_pipeline(path))]
        if (path / "pipeline_samples.csv").is_file():
            tables.append((path / "pipeline_samples.csv", read_pipeline_samples(path)))
    else:
        results, rounds, samples, _ = read_run(path)
        results = results.assign(noisy=results["noisy"].map({True: "True", False: "False"}))
        tables = [
            (path / "results.csv", results),
            (path / "rounds.csv", rounds),
            (_samples_file(path), samples),
        ]
    done = []
    for f, df in tables:
        _rewrite_csv(f, df)
        done.append(f)
    jsonl = path / "pipeline_results.jsonl"
    if jsonl.is_file():
        lines = [
            json.dumps(upgrade_pipeline_result(json.loads(ln)))
            for ln in jsonl.read_text().splitlines()
        ]
        atomic_write(jsonl, "".join(f"{ln}\n" for ln in lines))
        done.append(jsonl)
    meta.schema_version = SCHEMA_VERSION
    atomic_write(path / "run.json", json.dumps(meta.to_json(), indent=2))
    return done + [path / "run.json"]
