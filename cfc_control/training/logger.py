"""Training logs: a CSV table and TensorBoard events in the run directory.

``metrics.csv`` has one row per logged step with a ``step`` column and one column per metric
(columns are added when a new metric first appears; the file is rewritten then, which is cheap
at one row per epoch). ``tb/`` holds TensorBoard events (``tensorboard --logdir <run>/tb``).
On resume, rows after the resumed step are dropped and TensorBoard purges them too, so a resumed
run's logs read as one run.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from cfc_control.files import atomic_write_text


class RunLogger:
    """``log(step, metrics)`` to CSV and TensorBoard; ``close()`` at the end."""

    def __init__(self, run_dir: Path, resume_step: Optional[int] = None, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: List[Dict[str, Any]] = []
        self.fields: List[str] = ["step"]
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                self.fields = list(reader.fieldnames or ["step"])
                self.rows = [r for r in reader if r.get("step") not in (None, "") and float(r["step"]) <= resume_step]
            self._rewrite()
        elif self.path.exists():
            self.path.unlink()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tb"),
                                        purge_step=None if resume_step is None else resume_step + 1)

    def log(self, step: int, metrics: Dict[str, Any]) -> None:
        row = {"step": step, **metrics}
        new = [k for k in row if k not in self.fields]
        self.rows.append(row)
        if new:
            self.fields += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields).writerow(row)
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def _rewrite(self) -> None:
        from io import StringIO

        buf = StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.fields)
        writer.writeheader()
        writer.writerows(self.rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, buf.getvalue())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
