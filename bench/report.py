"""Figures, their targets, and the table and JSON the benchmark writes."""

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .infra import ROOT

RESULTS = ROOT / "bench" / "results"


@dataclass
class Figure:
    """One reported number, with its target (if any) and the commands that produced it."""

    key: str
    title: str
    value: float | int | None
    unit: str = ""
    target: str = ""  # e.g. ">= 0.6", "<= 6", "== 100"; empty: informational
    commands: list[str] = field(default_factory=list)
    note: str = ""
    details: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "N/A"
        if not self.target:
            return "info"
        op, _, bound = self.target.partition(" ")
        bound = float(bound)
        ok = {">=": self.value >= bound, "<=": self.value <= bound, "==": self.value == bound}[op]
        return "PASS" if ok else "FAIL"

    def shown_value(self) -> str:
        if self.value is None:
            return "n/a"
        if isinstance(self.value, int):
            text = f"{self.value:,}"
        elif abs(self.value) >= 100:
            text = f"{self.value:,.0f}"
        elif abs(self.value) >= 10:
            text = f"{self.value:.1f}"
        elif self.unit == "ms" and abs(self.value) < 1:
            # A sub-millisecond time against a target in hundredths: one more digit.
            text = f"{self.value:.3f}"
        else:
            text = f"{self.value:.2f}"
        return f"{text} {self.unit}".strip()

    def shown_target(self) -> str:
        if not self.target:
            return "—"
        op, _, bound = self.target.partition(" ")
        return f"{ {'>=': '≥', '<=': '≤', '==': '='}[op] } {bound}".strip()


def machine() -> dict:
    """What the figures were measured on."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])

    def git(*args):
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD")
        + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""),
    }


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def markdown_table(figures: list[Figure]) -> str:
    rows = ["| measurement | figure | target | result |", "|---|---:|---|---|"]
    for figure in figures:
        rows.append(
            f"| {figure.title} | {figure.shown_value()} | {figure.shown_target()} | {figure.verdict} |"
        )
    return "\n".join(rows)


def render_text(figures: list[Figure], header: dict) -> str:
    """The table for the terminal: one line a figure, then the commands that reproduce it."""
    lines = [
        f"Benchmark ({header['mode']}) {header['started']} — {header['machine_line']}",
        "",
    ]
    width = max(len(figure.title) for figure in figures)
    for figure in figures:
        lines.append(
            f"{figure.title:<{width}}  {figure.shown_value():>14}  {figure.shown_target():<8}  {figure.verdict}"
        )
        if figure.note:
            lines.append(f"    {figure.note}")
        for command in figure.commands:
            lines.append(f"    $ {command}")
    return "\n".join(lines)


def machine_line(info: dict) -> str:
    tools = ", ".join(f"{k} {v}" for k, v in info.get("tools", {}).items())
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, "
        f"Linux {info['kernel']}, Python {info['python']}; {tools}; commit {info['commit']}"
    )


def write(figures: list[Figure], header: dict, stamp: str) -> tuple[Path, Path]:
    """bench/results/<stamp>.json (every figure, its rounds and commands) and .md (the table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        **header,
        "figures": [
            {**asdict(figure), "verdict": figure.verdict, "shown": figure.shown_value()}
            for figure in figures
        ],
    }
    json_path = RESULTS / f"{stamp}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path = RESULTS / f"{stamp}.md"
    md_path.write_text(
        f"Run `{header['command']}` on {header['started']} ({header['duration_s']:.0f} s), "
        f"{header['machine_line']}.\n\n{markdown_table(figures)}\n"
    )
    return json_path, md_path
