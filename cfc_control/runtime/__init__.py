"""What a robot runs: the step-wise :class:`PolicyRunner`, its compiled kernels, export to
TorchScript/ONNX, the ZeroMQ control node and client, and the wall-clock control loop.

Only the runner is imported here; the other modules load on use (``cfc_control.runtime.export``,
``.node``, ``.client``, ``.loop``), so a control loop pays for what it uses.
"""

from cfc_control.runtime.errors import BadInputError, DtClampWarning, NonFiniteOutputError
from cfc_control.runtime.runner import PolicyRunner, RunnerState, RunnerStats

__all__ = ["PolicyRunner", "RunnerState", "RunnerStats", "BadInputError", "NonFiniteOutputError", "DtClampWarning"]
