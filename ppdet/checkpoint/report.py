"""What a weight load did, name by name, and the one error type for unusable checkpoints."""

from __future__ import annotations

import dataclasses

from ppdet.errors import PpdetError

__all__ = ["LoadReport", "WeightsError"]


class WeightsError(PpdetError, RuntimeError):
    """A checkpoint that cannot be used: one line naming the file and the problem."""


@dataclasses.dataclass
class LoadReport:
    """The outcome of copying a checkpoint into a model.

    ``loaded``: model parameter names that were filled; ``mismatched``: (name, checkpoint
    shape, model shape); ``missing``: model parameters the checkpoint does not fill;
    ``unused``: checkpoint entries nothing took; ``skipped``: an ImageNet classifier left out
    on purpose (not a problem).
    """

    path: str
    loaded: list[str]
    mismatched: list[tuple[str, tuple, tuple]]
    missing: list[str]
    unused: list[str]
    skipped: list[str] = dataclasses.field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        """One line: ``weights <path>: loaded N, shape-mismatched N [...], missing N [...], ...``."""

        def names(items: list) -> str:
            shown = ", ".join(str(i) for i in items[:limit])
            more = f", ... (+{len(items) - limit})" if len(items) > limit else ""
            return f" [{shown}{more}]" if items else ""

        mism = [f"{n} {tuple(a)}->{tuple(b)}" for n, a, b in self.mismatched]
        text = (
            f"weights {self.path}: loaded {len(self.loaded)}, shape-mismatched "
            f"{len(self.mismatched)}{names(mism)}, missing {len(self.missing)}"
            f"{names(self.missing)}, unused {len(self.unused)}{names(self.unused)}"
        )
        if self.skipped:
            text += f", classifier skipped {len(self.skipped)}{names(self.skipped)}"
        return text
