"""`bench import-pytest BENCHMARK.json`: a pytest-benchmark JSON file -> a run directory with the
same results.csv / samples / run.json schema, so `bench report` and `bench compare` read it."""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import RunDir
from bench.runmeta import RunMeta
from bench.sizes import Size
from bench.sweep.cases import CaseState, case_row
from bench.sweep.settings import Settings
from bench.timing import Budget, call_ns
from models.registry import get, impls

NEEDED = ("impl", "model", "size", "dims", "sweep", "steps_per_call", "threads")


class ImportFailure(ValueError):
    """The file is not a pytest-benchmark JSON of this harness's route."""


def load_json(path: Path) -> list[dict]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ImportFailure(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ImportFailure(f"{path} is not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ImportFailure(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list)")
    out = []
    for b in doc["benchmarks"]:
        info = b.get("extra_info", {}) if isinstance(b, dict) else {}
        missing = [k for k in NEEDED if k not in info]
        if missing:
            name = b.get("name", "?") if isinstance(b, dict) else "?"
            raise ImportFailure(
                f"benchmark {name!r} in {path} lacks extra_info {', '.join(missing)}: "
                "not from `pytest bench/`"
            )
        if info["impl"] not in impls(info["model"]):
            raise ImportFailure(
                f"benchmark {b.get('name')!r} names unknown implementation "
                f"{info['model']}/{info['impl']}"
            )
        data = b.get("stats", {}).get("data")
        if not data:
            raise ImportFailure(
                f"benchmark {b.get('name')!r} has no raw data: use --benchmark-json, "
                "or --benchmark-save with --benchmark-save-data"
            )
        out.append(b)
    if not out:
        raise ImportFailure(f"{path} holds no benchmarks")
    return [doc] + out


def import_pytest(path: Path, out: Path) -> Path:
    doc, *benches = load_json(path)
    sizes: dict[str, Size] = {}
    states, made = [], []
    for b in benches:
        info = b["extra_info"]
        size = sizes.setdefault(
            info["size"], Size(info["model"], tuple(info["dims"].items()), info["sweep"])
        )
        st = CaseState(get(info["model"], info["impl"]), size, status="ok")
        for name in ("first_call_s", "loss_rel_err", "update_rel_err"):
            if info.get(name) is not None:
                setattr(st, name, float(info[name]))
        if info.get("ops_per_step") is not None:
            st.framework_ops_per_step = float(info["ops_per_step"])
        # the route's data are seconds per step; a call held K of them: the sweep's own round
        k = int(info["steps_per_call"])
        ns = [int(round(call_ns(v, k))) for v in b["stats"]["data"]]
        made.append((st.add_round(0, ns, k, st.first_call_s), ns))
        states.append(st)
    # pragma: no mutate (one pytest session: one --threads, one model, one versions for all)
    threads = int(benches[0]["extra_info"]["threads"])
    settings = Settings(
        benches[0]["extra_info"]["model"],
        list(  # pragma: no mutate (one model per session)
            dict.fromkeys(st.impl.name for st in states)
        ),
        list(sizes.values()),
        threads,
        1,
        Budget(),
        0.0,
    )
    run = RunDir.create(out)
    for r, ns in made:
        run.append_round(r, ns)
    run.write_results([case_row(st, settings, {}) for st in states])
    meta = RunMeta(
        run.path.name,
        "import",
        settings.to_json(),
        _machine(doc, benches),
        ["import-pytest", str(path)],
        status="complete",
        created_utc=doc.get("datetime"),
        finished_utc=doc.get("datetime"),
        source={"pytest_benchmark_json": str(path), "version": doc.get("version")},
    )
    run.write_meta(meta)
    run.compress_samples()
    return run.path


def _machine(doc: dict, benches: list[dict]) -> dict:
    """What pytest-benchmark's machine_info says, in run.json's machine keys."""
    mi = doc.get("machine_info", {})
    return {
        "host": mi.get("node"),
        "cpu_model": (mi.get("cpu") or {}).get("brand_raw", mi.get("processor")),
        "cores_logical": (mi.get("cpu") or {}).get("count"),
        "memory_total_gb": None,
        "os": f"{mi.get('system')} {mi.get('release')}",
        "python": mi.get("python_version"),
        # pragma: no mutate (one session: one set of versions)
        "versions": benches[0]["extra_info"].get("versions", {}),
        "git_commit": (doc.get("commit_info") or {}).get("id"),
    }
