"""Measuring tools: wrk runs, curl transfers, a worker's resident memory, interleaved rounds."""

import contextlib
import re
import shlex
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict:
    """The figures of one wrk run: requests/s, requests, errors, latency percentiles (ms)."""
    result: dict = {"errors": 0, "non_2xx_3xx": 0}
    if match := re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M):
        result["rps"] = float(match.group(1))
    if match := re.search(r"^\s*(\d+) requests in ([\d.]+\w+)", output, re.M):
        result["requests"] = int(match.group(1))
        result["seconds"] = _ms(match.group(2)) / 1e3
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        connect, read, write, timeout = map(int, match.groups())
        result["errors"] = connect + write + timeout
        result["read_errors"] = read
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        result["non_2xx_3xx"] = int(match.group(1))
    if match := re.search(r"^\s+Latency\s+([\d.]+\w+)", output, re.M):
        result["latency_avg_ms"] = _ms(match.group(1))
    for percent, value in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", output, re.M):
        result[f"latency_p{percent}_ms"] = _ms(value)
    if "rps" not in result:
        raise ValueError(f"no Requests/sec in wrk's output:\n{output}")
    return result


def wrk_command(
    wrk: str,
    url: str,
    *,
    duration: int,
    connections: int,
    threads: int = 1,
    latency: bool = False,
    headers: dict | None = None,
    script: Path | None = None,
) -> list[str]:
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    if latency:
        command.append("--latency")
    if script is not None:
        command += ["-s", str(script)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    return [*command, url]


def wrk_paths_script(paths: list[str]) -> str:
    """A wrk Lua script that requests `paths` in turn (GET, the URL's host)."""
    quoted = ", ".join('"' + path.replace("\\", "").replace('"', "") + '"' for path in paths)
    return (
        f"local paths = {{{quoted}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )


def wrk_post_script(path: str, body: str, content_type: str) -> str:
    """A wrk Lua script that POSTs `body` (with `content_type`) to `path` on every request."""

    def lua(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (
        'wrk.method = "POST"\n'
        f"wrk.path = {lua(path)}\n"
        f"wrk.body = {lua(body)}\n"
        f'wrk.headers["Content-Type"] = {lua(content_type)}\n'
    )


def run_wrk(command: list[str]) -> dict:
    """Run wrk (bounded by its -d) and parse it; a run with failed requests is an error."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    if result["non_2xx_3xx"] or result["errors"]:
        raise RuntimeError(f"wrk saw failed requests for {command[-1]}:\n{done.stdout}")
    return result


def curl_command(url: str, *, headers: dict | None = None, extra: tuple = ()) -> list[str]:
    command = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download} %{time_total}",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    return [*command, *extra, url]


def run_curl(command: list[str], *, timeout: float = 600) -> dict:
    """One transfer with curl: status, bytes and seconds (curl's own clock)."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr}")
    status, size, seconds = done.stdout.split()
    return {"status": int(status), "bytes": int(size), "seconds": float(seconds)}


def shell(command: list[str]) -> str:
    return shlex.join(str(part) for part in command)


# --- Memory of a process ----------------------------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class RssWatch:
    """The peak resident memory growth of a process while the block runs.

    Two readings, the larger wins: VmHWM (the kernel's own peak, reset at the start through
    /proc/<pid>/clear_refs) and VmRSS sampled every few milliseconds.
    """

    def __init__(self, pid: int, interval: float = 0.005):
        self.pid = pid
        self.interval = interval
        self.start_kib = 0
        self.peak_kib = 0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return
            time.sleep(self.interval)

    def __enter__(self):
        # Reset VmHWM to the current RSS (older kernels refuse: the samples alone then).
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.start_kib = proc_status_kib(self.pid, "VmRSS")
        self.peak_kib = self.start_kib
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        try:
            hwm = proc_status_kib(self.pid, "VmHWM")
        except (OSError, KeyError):
            hwm = 0
        self.peak_kib = max(self.peak_kib, hwm)

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.start_kib) / 1024

    def as_dict(self) -> dict:
        return {
            "rss_start_mib": round(self.start_kib / 1024, 1),
            "rss_peak_mib": round(self.peak_kib / 1024, 1),
            "growth_mib": round(self.growth_mib, 1),
        }


# --- Interleaving -----------------------------------------------------------------------------


def interleave(rounds: int, runs: dict[str, Callable[[], dict]]) -> dict[str, list[dict]]:
    """Run each variant once per round, in turn (A B C A B C …), so drift on a shared machine
    hits every variant alike; return each variant's results in round order."""
    results: dict[str, list[dict]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    return results


def round_ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Per-round ratios: each variant against the baseline measured in the same round."""
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def throughputs(results: dict[str, list[dict]]) -> dict[str, list[float]]:
    """Bytes per second of each curl transfer, per variant (`interleave`'s results)."""
    return {name: [run["bytes"] / run["seconds"] for run in runs] for name, runs in results.items()}


def median(values: list[float]) -> float:
    return statistics.median(values)
