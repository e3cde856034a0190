"""What a run did: per node, the implementation and device used, attempts, errors, wall time."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Attempt:
    """One try of one implementation of a node."""

    kind: str
    device: str
    ok: bool
    seconds: float
    error: str | None = None


@dataclass
class NodeReport:
    """How one node ran."""

    node: str
    stage: str
    implementation: str | None = None  # the kind that produced the outputs
    device: str | None = None
    seconds: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why it was not tried

    @property
    def fell_back(self) -> bool:
        """True when a kind earlier in the preference order failed or was skipped."""
        return any(not a.ok for a in self.attempts) or bool(self.skipped)

    @property
    def errors(self) -> list[str]:
        return [f"{a.kind}: {a.error}" for a in self.attempts if a.error]


@dataclass
class RunReport:
    """The record of one graph run."""

    graph: str
    nodes: dict[str, NodeReport] = field(default_factory=dict)
    seconds: float = 0.0
    ok: bool = False
    fallback_used: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        out = asdict(self)
        for name, node in self.nodes.items():
            out["nodes"][name]["fell_back"] = node.fell_back
        return out

    def devices(self) -> set[str]:
        return {n.device for n in self.nodes.values() if n.device}

    def format_table(self) -> str:
        """A plain-text table, one line per node."""
        rows = [("node", "stage", "impl", "device", "ms", "attempts", "note")]
        for n in self.nodes.values():
            note = "; ".join(n.errors + [f"{k} skipped: {why}" for k, why in n.skipped.items()])
            rows.append((n.node, n.stage, n.implementation or "-", n.device or "-", f"{n.seconds * 1e3:.1f}",
                         str(len(n.attempts)), note))
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:6], widths)) + ("  " + r[6] if r[6] else "")
                 for r in rows]
        status = "ok" if self.ok else f"FAILED: {self.error}"
        if self.fallback_used:
            status += " (graph fallback output)"
        lines.append(f"total {self.seconds * 1e3:.1f} ms, {status}")
        return "\n".join(lines)
