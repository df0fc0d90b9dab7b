"""The pipeline tests' processes: `python -m bench` run or started with this session's tag, and
the processes a probe leaves (tests/test_pipeline.py, test_pipeline_frameworks.py and
test_pipeline_nodes.py)."""

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TAG = {"BENCH_TEST_TAG": f"test_pipeline-{uuid.uuid4().hex}"}  # this session's processes only


def bench(*args, env=None, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **TAG, **(env or {})},
    )


def start(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **TAG, **(env or {})},
    )


def mine(proc) -> bool:
    try:
        return proc.environ().get("BENCH_TEST_TAG") == TAG["BENCH_TEST_TAG"]
    except psutil.Error:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(proc) -> list[psutil.Process]:
    try:
        root = psutil.Process(proc.pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
