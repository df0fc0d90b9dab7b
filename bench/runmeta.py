"""The run record, run.json as a type: what kind of run it is, its state and times, the command,
the machine and settings, what the workers reported, the peaks, the noise and the extra rounds.
Every writer builds one (`RunMeta.new`), every reader gets one (`results.read_meta`), and
`to_json` is the one place that writes its keys."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from bench import envinfo
from bench.schema import SCHEMA_VERSION

KINDS = ("sweep", "pipeline", "import")


@dataclass
class RunMeta:
    run_id: str  # the run directory's name
    kind: str  # sweep (bench run), pipeline (bench pipeline), import (bench import-pytest)
    settings: dict  # the settings it was made with (Settings / PipelineSettings as JSON)
    machine: dict  # bench/envinfo.collect()
    argv: list[str] = field(default_factory=list)
    status: str = "running"  # running, interrupted, complete
    created_utc: str | None = None
    finished_utc: str | None = None
    resumed: list[dict] = field(default_factory=list)  # each resume's time and command
    workers: dict = field(default_factory=dict)  # framework -> what its worker uses
    peaks: dict = field(default_factory=dict)  # framework -> its matmul peak (and bandwidth)
    noise: dict = field(default_factory=dict)  # the host's noise at the start and the end
    extra_rounds: dict | None = None  # "case key" -> rounds in all, decided once
    kernel_warnings: list[str] = field(default_factory=list)
    native_kernels: dict | None = None  # --native-kernels: what it cleared for the workers
    case_info: dict = field(default_factory=dict)  # impl -> size -> the step's description
    source: dict | None = None  # an import's file and its pytest-benchmark version
    schema_version: int = SCHEMA_VERSION  # the version it was written with
    other: dict = field(default_factory=dict)  # keys this harness does not know, kept

    @classmethod
    def new(cls, run_id: str, kind: str, settings: dict, argv: list[str]) -> RunMeta:
        """A new run's record, on this machine, now."""
        return cls(run_id, kind, settings, envinfo.collect(), argv, created_utc=envinfo.utc_now())

    def resume(self, argv: list[str]) -> None:
        self.resumed.append({"utc": envinfo.utc_now(), "argv": argv})

    def finish(self, stopped: bool, noise_start: dict | None = None) -> None:
        """The end of this part of the run: interrupted or complete, when, and the noise."""
        self.status = "interrupted" if stopped else "complete"
        self.finished_utc = envinfo.utc_now()
        if noise_start is not None:
            self.noise = envinfo.noise_end(noise_start)

    def to_json(self) -> dict:
        """run.json's object: every known key (the empty optional ones left out), then the
        unknown ones as read."""
        optional = ("resumed", "native_kernels", "case_info", "source")
        out: dict = {"schema_version": self.schema_version}
        for f in fields(self):
            value = getattr(self, f.name)
            skip = (f.name in optional and not value) or (
                f.name == "extra_rounds" and value is None
            )
            if f.name not in ("schema_version", "other") and not skip:
                out[f.name] = value
        return out | self.other

    @classmethod
    def from_json(cls, d: dict) -> RunMeta:
        """A run.json of the current schema (bench/schema.upgrade_meta lifts older ones)."""
        known = {f.name for f in fields(cls)} - {"other"}
        args = {k: v for k, v in d.items() if k in known}
        return cls(**args, other={k: v for k, v in d.items() if k not in known})
