"""`bench pipeline --nnodes N`: the probe across machines, for every framework whose pipeline form
says it can (torch.distributed, jax.distributed, C over MPI).

Node 0 runs the probe as on one machine and records everything. Every other node connects to
node 0 at the endpoint (HOST:PORT, node 0's address) once, and keeps that connection, the roster,
for the whole probe. For each process group, node 0 sends each node the rank specs it is to start
(protocol.RankSpec as JSON); the ranks then meet at the group's own rendezvous, on a port node 0
picks at the endpoint's address: torch's c10d TCPStore, jax.distributed's coordinator, or an MPI
port (models/cjoin.c). Their data moves over that engine alone. At the end node 0 says the probe
is over. A closed connection tells the other side that a node is gone: node 0 fails the case in
progress and stops; a serving node kills its ranks and exits. Every rank's sockets use the
interface of its node's address (`RankSpec.bind`): loopback on one node.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from bench import protocol
from bench.pipeline.group import Group

KEEPALIVE = (
    (socket.TCP_KEEPIDLE, 10),
    (socket.TCP_KEEPINTVL, 5),
    (socket.TCP_KEEPCNT, 3),
)  # a node that vanished without closing its connection is noticed in about 25 s


class NodeLost(RuntimeError):
    """A node of the probe is gone (its connection closed, or it never came)."""


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
                "listens on loopback only"
            )
        return
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--rdzv-endpoint {endpoint!r}: want HOST:PORT, node 0's address")


def split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def interface_of(address: str) -> str:
    """The name of this machine's network interface that holds `address` (lo for 127.0.0.1);
    ValueError when none does."""
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] == address for a in addrs):
            return name
    raise ValueError(f"no network interface of this machine has the address {address}")


def endpoint_address(endpoint: str) -> str:
    """The IP address of the endpoint's host (node 0's address); ValueError when it resolves to
    none."""
    host, port = split(endpoint)
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
    except OSError as e:
        raise ValueError(f"--rdzv-endpoint {endpoint}: {e}") from None


def group_endpoint(address: str) -> str:
    """A free port at node 0's address for one group's rendezvous (the OS picks it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        port = s.getsockname()[1]
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def keep_alive(conn: socket.socket) -> socket.socket:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in KEEPALIVE:
        conn.setsockopt(socket.IPPROTO_TCP, option, value)
    return conn


def send(conn: socket.socket, msg: dict) -> None:
    conn.sendall((json.dumps(msg) + "\n").encode())


class Roster:
    """Node 0's connections to the other nodes, one per node, for the whole probe."""

    def __init__(self, endpoint: str, conns: dict[int, socket.socket]) -> None:
        self.endpoint, self.conns = endpoint, conns
        self.addresses = {0: endpoint_address(endpoint)}
        self.addresses |= {k: c.getpeername()[0] for k, c in conns.items()}
        self.lost: dict[int, str] = {}
        self.sink: queue.Queue | None = None  # the running group's lines: a loss fails its case
        for k, c in conns.items():
            threading.Thread(target=self._watch, args=(k, c), daemon=True).start()

    @classmethod
    def gather(cls, endpoint: str, nnodes: int, stages: int, timeout_s: float) -> Roster:
        """Every other node's connection at the endpoint; NodeLost (one line) when some did not
        come within timeout_s, ValueError when one runs other settings."""
        host, port = split(endpoint)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((endpoint_address(endpoint), port))
        except OSError as e:
            raise ValueError(f"--rdzv-endpoint {endpoint}: cannot listen there ({e})") from None
        server.listen(nnodes)
        conns: dict[int, socket.socket] = {}
        deadline = time.monotonic() + timeout_s
        try:
            while len(conns) < nnodes - 1 and time.monotonic() < deadline:
                server.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    break
                conns[hello(conn, nnodes, stages, conns)] = keep_alive(conn)
        except ValueError:
            for c in conns.values():
                c.close()
            raise
        finally:
            server.close()
        missing = [k for k in range(1, nnodes) if k not in conns]
        if missing:
            for c in conns.values():
                c.close()
            raise NodeLost(
                f"node {', '.join(map(str, missing))} did not join at {endpoint} within "
                f"{timeout_s:g} s (start every node with the same --stages, --nnodes and "
                "--rdzv-endpoint)"
            )
        return cls(endpoint, conns)

    def _watch(self, k: int, conn: socket.socket) -> None:
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        self.lost.setdefault(k, f"node {k} left the probe")
        if self.sink is not None:
            self.sink.put(("node", self.lost[k]))

    def announce(self, specs: list[protocol.RankSpec], sink: queue.Queue) -> None:
        """Each node its ranks of the next group; NodeLost when a node is gone."""
        self.sink = sink
        for k, conn in self.conns.items():
            if k in self.lost:
                raise NodeLost(self.lost[k])
            try:
                send(conn, {"specs": [asdict(s) for s in specs if s.node == k]})
            except OSError:
                raise NodeLost(self.lost.get(k, f"node {k} left the probe")) from None

    def close(self) -> None:
        """The probe is over: the nodes stop serving."""
        for conn in self.conns.values():
            try:
                send(conn, {"over": True})
            except OSError:
                pass
            conn.close()


def hello(conn: socket.socket, nnodes: int, stages: int, conns: dict) -> int:
    """A joining node's number, checked; ValueError (sent to it too) when its settings differ."""
    conn.settimeout(30)
    try:
        msg = json.loads(conn.makefile().readline() or "{}")
    except (OSError, ValueError):
        msg = {}
    k = msg.get("node")
    why = ""
    if (msg.get("nnodes"), msg.get("stages")) != (nnodes, stages):
        why = (
            f"node {k} runs --nnodes {msg.get('nnodes')} --stages {msg.get('stages')}, node 0 "
            f"--nnodes {nnodes} --stages {stages}"
        )
    elif not isinstance(k, int) or not 0 < k < nnodes or k in conns:
        why = f"a second node {k} joined"
    if why:
        send(conn, {"refused": why})
        conn.close()
        raise ValueError(why)
    conn.settimeout(None)
    return k


def connect(endpoint: str, timeout_s: float, stop: threading.Event) -> socket.socket | None:
    """A connection to node 0, tried until timeout_s; None when it never answered."""
    host, port = split(endpoint)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        try:
            conn = socket.create_connection((host, port), timeout=5)
            conn.settimeout(None)  # node 0 is silent while a group runs
            return keep_alive(conn)
        except OSError:
            stop.wait(0.2)
    return None


def serve(s, logs: Path, stop: threading.Event, say=print) -> int:
    """A node other than 0: the ranks node 0 sends it, group after group. 0 when node 0 said the
    probe is over; 2 when node 0 never answered, refused this node or went away; 130 when
    stopped."""
    logs.mkdir(parents=True, exist_ok=True)
    who = f"node {s.node_rank}"
    conn = connect(s.rdzv_endpoint, s.timeout_s, stop)
    if conn is None:
        say(f"{who}: no node 0 answered at {s.rdzv_endpoint} within {s.timeout_s:g} s")
        return 2
    send(conn, {"node": s.node_rank, "nnodes": s.nnodes, "stages": s.stages})
    messages: queue.Queue = queue.Queue()
    threading.Thread(target=read_messages, args=(conn, messages), daemon=True).start()
    group, groups = None, 0
    try:
        while not stop.is_set():
            try:
                msg = messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if group is not None:
                group.kill()
                group = None
            if msg is None or "refused" in msg:
                say(f"{who}: {msg['refused'] if msg else 'node 0 went away; ranks here killed'}")
                return 2
            if msg.get("over"):
                say(f"{who}: node 0 finished the probe after {groups} process groups")
                return 0
            group = Group([protocol.RankSpec.decode(json.dumps(x)) for x in msg["specs"]], logs)
            groups += 1
        return 130
    finally:
        if group is not None:
            group.kill()
        conn.close()


def read_messages(conn: socket.socket, out: queue.Queue) -> None:
    """node 0's lines as dicts, then None when its connection closes."""
    try:
        for line in conn.makefile():
            out.put(json.loads(line))
    except (OSError, ValueError):
        pass
    out.put(None)
