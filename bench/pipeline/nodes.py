"""`bench pipeline --nnodes N`: the probe across machines, torch.distributed only.

Node 0 runs the probe as on one machine (it records everything), its ranks joining the others at
its c10d store (`tcp://HOST:PORT`, torch's TCPStore, the rendezvous torchrun's static launch
uses). Every other node serves: for each process group node 0 forms it starts its own ranks,
which take their cases from rank 0 (a broadcast after the rendezvous), until node 0 forms a last
group with no case (PROBE_OVER). No node records anything but node 0.
"""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

from bench import protocol
from bench.pipeline.group import Group
from bench.pipeline.rank import NO_GROUP, PROBE_OVER


def check_endpoint(endpoint: str, nnodes: int, node_rank: int) -> None:
    """ValueError (one line) for flags that cannot make a multi-node probe. On one node nothing
    listens beyond loopback, so an endpoint there is refused."""
    if nnodes < 1 or not 0 <= node_rank < nnodes:
        raise ValueError(
            f"--node-rank {node_rank} with --nnodes {nnodes}: need 0 <= node rank < nodes"
        )
    if nnodes == 1:
        if endpoint or node_rank:
            raise ValueError(
                "--rdzv-endpoint and --node-rank need --nnodes 2 or more: a one-node probe "
                "listens on loopback only (a file store, gloo on lo)"
            )
        return
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--rdzv-endpoint {endpoint!r}: want HOST:PORT of node 0's c10d store")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def local_specs(s, cases: tuple) -> list[protocol.RankSpec]:
    per = s.stages // s.nnodes
    return [
        protocol.RankSpec(
            r,
            s.stages,
            s.model,
            s.config,
            s.device,
            s.timeout_s,
            f"tcp://{s.rdzv_endpoint}",
            cases,
            nnodes=s.nnodes,
        )
        for r in range(s.node_rank * per, (s.node_rank + 1) * per)
    ]


def wait_exit(group: Group, stop: threading.Event) -> list[int]:
    """The exit codes of a group's processes once all have ended (or were killed on stop)."""
    while not stop.is_set() and any(c.proc.poll() is None for c in group.ranks):
        stop.wait(0.2)
    group.kill()
    return [c.proc.wait() for c in group.ranks]


def serve(s, logs: Path, stop: threading.Event, say=print) -> int:
    """A node other than 0: its ranks for every group node 0 forms. 0 when node 0 said the probe is
    over, 1 when no group formed within the timeout, 130 when stopped."""
    logs.mkdir(parents=True, exist_ok=True)
    groups = 0
    while not stop.is_set():
        codes = wait_exit(
            Group(
                local_specs(s, ()), logs, loopback=is_loopback(s.rdzv_endpoint.rpartition(":")[0])
            ),
            stop,
        )
        if PROBE_OVER in codes:
            say(f"node {s.node_rank}: node 0 finished the probe after {groups} process groups")
            return 0
        if NO_GROUP in codes:
            say(
                f"node {s.node_rank}: no process group formed at {s.rdzv_endpoint} within "
                f"{s.timeout_s:g} s "
                "(is node 0 running with the same --stages and --nnodes?)"
            )
            return 1
        groups += 1
    return 130


def goodbye(s, logs: Path) -> None:
    """Node 0, at the end: a last group with no case, so the other nodes stop serving."""
    wait_exit(
        Group(local_specs(s, ()), logs, loopback=is_loopback(s.rdzv_endpoint.rpartition(":")[0])),
        threading.Event(),
    )
