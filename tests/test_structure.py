"""The code's shape: no import cycle, models/ never imports bench/, a wing never imports another,
only the supervisor starts processes, and every registered implementation is a builder with the
Step interface. Size is ruff's to check, by complexity and arguments (pyproject.toml)."""

import ast
from pathlib import Path

import pytest

from models.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "models")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (function-level imports count too)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n and n != name:
                found.add(n)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path, or [] (depth-first search; package __init__ edges count)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                cycle = visit(m)
                if cycle:
                    return cycle
        stack.pop()
        state[n] = 2
        return []

    for n in sorted(g):
        if n not in state:
            cycle = visit(n)
            if cycle:
                return cycle
    return []


def test_no_import_cycle_in_bench_or_models():
    cycle = find_cycle(graph())
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    g = graph()
    # the cycle wave 1 had
    g["models.mlp.model"] = g["models.mlp.model"] | {"models.mlp.numpy_impl"}
    assert find_cycle(g)[0] in ("models.mlp.model", "models.mlp.numpy_impl")


def test_models_never_import_bench():
    for name, deps in graph().items():
        if name.startswith("models"):
            assert not [d for d in deps if d.startswith("bench")], name


def test_no_framework_implementation_imports_another_framework():
    for name, path in modules().items():
        if not name.endswith("_impl"):
            continue
        own = name.rsplit(".", 1)[1].removesuffix("_impl")
        tree = ast.parse(path.read_text())
        top = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        top |= {
            n.module.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
        }
        others = {"torch", "jax"} - {own}
        assert not top & others, f"{name} imports {top & others}"


@pytest.mark.parametrize("model", list(REGISTRY))
def test_every_registered_builder_takes_cfg_steps_per_call_device(model):
    for impl in REGISTRY[model].values():
        module, func = impl.target.split(":")
        path = ROOT / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func), None)
        if fn is None:  # made by models/torch_util.builders, whose inner builders are checked below
            made = [
                n
                for n in tree.body
                if isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Call)
                and getattr(n.value.func, "id", "") == "builders"
                and func in ast.unparse(n.targets[0])
            ]
            assert made, f"{impl.name}: {impl.target} not found"
            continue
        args = [a.arg for a in fn.args.args]
        assert args[:1] == ["cfg"] and "steps_per_call" in args and "device" in args, (
            f"{impl.target}({', '.join(args)})"
        )


WINGS = (
    "sweep",
    "pipeline",
    "report",
    "claim",
)  # bench/<wing>/: each imports the core, never another wing
ENTRY = (
    "bench.commands",
    "bench.conftest",
    "bench.test_benchmarks",
    "bench.__main__",
)  # above the wings


def wing_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "bench" and parts[1] in WINGS else None


def is_entry(module: str) -> bool:
    return any(module == e or module.startswith(e + ".") for e in ENTRY)


def layer_violations(g: dict[str, set[str]]) -> list[str]:
    """A wing importing another wing; the core importing a wing or a command."""
    bad = []
    for name, deps in g.items():
        if not name.startswith("bench") or is_entry(name):
            continue
        mine = wing_of(name)
        for d in deps:
            other = wing_of(d)
            if (other and other != mine) or is_entry(d):
                bad.append(f"{name} imports {d}")
    return bad


def test_a_wing_never_imports_another_and_the_core_imports_no_wing():
    assert not layer_violations(graph())


def test_the_layer_check_finds_a_planted_import_between_wings():
    g = graph()
    g["bench.sweep.runner"] = g["bench.sweep.runner"] | {"bench.report.analysis"}
    g["bench.results"] = g["bench.results"] | {"bench.pipeline.probe"}
    assert set(layer_violations(g)) == {
        "bench.sweep.runner imports bench.report.analysis",
        "bench.results imports bench.pipeline.probe",
    }


def test_every_wing_has_its_folder_and_no_flat_pipeline_module_is_left():
    for wing in WINGS:
        assert (ROOT / "bench" / wing / "__init__.py").is_file(), wing
    assert not list((ROOT / "bench").glob("pipe_*.py"))


def string_literals(path: Path) -> set[str]:
    return {
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_the_pipeline_package_names_no_model():
    from models.registry import MODELS

    for f in (ROOT / "bench" / "pipeline").glob("*.py"):
        named = string_literals(f) & set(MODELS)
        assert not named, f"{f.name} names {named}"


def spawning_sites(path: Path) -> list[str]:
    """Calls that start a process: subprocess, os.fork/exec/spawn, multiprocessing."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            found += [m for m in mods if m.split(".")[0] in ("subprocess", "multiprocessing")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr.startswith(("fork", "exec", "spawn", "posix_spawn", "system", "popen"))
        ):
            found.append(f"os.{node.attr}")
    return found


def test_processes_are_started_only_by_the_supervisor():
    sites = {
        name: s
        for name, path in modules().items()
        if name.startswith("bench") and name != "bench.supervisor" and (s := spawning_sites(path))
    }
    assert not sites, sites
    assert spawning_sites(ROOT / "bench" / "supervisor.py") == ["subprocess"]


def test_the_torch_builder_factory_makes_builders_of_cfg_steps_per_call_device():
    tree = ast.parse((ROOT / "models" / "torch_util.py").read_text())
    factory = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "builders")
    inner = [
        n
        for n in ast.walk(factory)
        if isinstance(n, ast.FunctionDef) and n is not factory and n.name.startswith("build")
    ]
    assert inner and all(
        [a.arg for a in f.args.args] == ["cfg", "steps_per_call", "device"] for f in inner
    )


def test_ruff_format_and_check_pass():
    """Small by complexity and arguments (C901 <= 10, PLR0913 <= 7, PLR0915), formatted at 100."""
    import subprocess
    import sys

    ruff = [sys.executable, "-m", "ruff"]
    fmt = subprocess.run(
        [*ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout[-2000:]
    lint = subprocess.run([*ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-2000:]


def _meta_subscripts(path: Path) -> list[int]:
    """Lines that index a run record like a dict (`meta[...]`, `self.meta[...]`)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript):
            v = node.value
            name = (
                v.id if isinstance(v, ast.Name) else v.attr if isinstance(v, ast.Attribute) else ""
            )
            if name.startswith("meta"):
                out.append(node.lineno)
    return out


def test_the_run_record_is_typed_and_its_id_written_in_one_place():
    """run.json is a RunMeta (bench/runmeta.py): outside the sweep and the probe nothing indexes
    it as a dict; no dict literal in bench/ keys a run_id but the schema's descriptions and the
    raw reader's checks (RunMeta.to_json and RunDir.write_table write it)."""
    indexed = {}
    keyed = {}
    for name, path in modules().items():
        if not name.startswith("bench"):
            continue
        if not name.startswith(("bench.sweep", "bench.pipeline")) and _meta_subscripts(path):
            indexed[name] = _meta_subscripts(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "run_id" for k in node.keys
            ):
                keyed.setdefault(name, []).append(node.lineno)
    assert not indexed, indexed
    assert set(keyed) <= {"bench.schema", "bench.results"}, keyed
