"""MuJoCo 4's warning about Gymnasium's HalfCheetah XML, silenced where the XML is compiled.

Gymnasium's ``half_cheetah.xml`` sets ``<compiler settotalmass="14"/>``, which MuJoCo 4 deprecates
with a warning printed at every compile (85 lines per HalfCheetah training run). The model it
compiles is right, and the file is Gymnasium's, so while a stock env is built
(:func:`stock_env_warnings`) MuJoCo's warning hook drops exactly that message and passes every
other one on, as MuJoCo would print it (or to a hook that was installed before).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

DEPRECATED = "compiler attribute 'settotalmass' is deprecated"


def _print(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


@contextmanager
def stock_env_warnings() -> Iterator[None]:
    """Within: MuJoCo warnings except the settotalmass deprecation go on as before."""
    # Imported here: importing cfc_control.tasks must not import MuJoCo, which picks its
    # rendering backend (MUJOCO_GL) when first imported.
    import mujoco

    previous: Optional[Callable[[str], None]] = mujoco.get_mju_user_warning()
    forward = previous or _print

    def hook(message: str) -> None:
        if DEPRECATED not in message:
            forward(message)

    mujoco.set_mju_user_warning(hook)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)
