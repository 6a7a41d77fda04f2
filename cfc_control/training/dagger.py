"""DAgger on sequences: the student drives, the expert labels the states it visits, the data set
grows, the student is retrained.

Iteration 0 is behaviour cloning on the initial demonstrations. Iteration i >= 1 runs
``episodes_per_iteration`` episodes in which each step's executed action is the expert's with
probability beta_i, else the student's (the mixture policy of Ross et al., 2011, drawn per env
and step); every step is labelled with the expert's action from the full simulator state; the
episodes are appended to the data set and the student is trained again on all of it.

The beta schedule is a parameter: ``"exponential:P"`` (beta_i = P^i), ``"linear:K"`` (beta_i =
max(0, 1 - i / K)), ``"constant:B"``, or an explicit list ``"1,0.5,0"`` (the last value repeats).
The observation normaliser is fitted once on the initial demonstrations and kept, so a
warm-started student keeps seeing the inputs it was trained on; validation episodes are the
initial demonstrations' held-out ones, so the validation loss stays comparable across iterations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from cfc_control.flags import setting
from cfc_control.policies import RecurrentPolicy
from cfc_control.training.bc import BCConfig, BCTrainer
from cfc_control.episodes.demos import Demonstrations
from cfc_control.episodes.closed_loop import run_episodes


def beta_schedule(spec: str) -> Callable[[int], float]:
    """Parse a beta schedule (see the module docstring) into ``iteration -> beta`` in [0, 1]."""
    text = str(spec).strip()
    kind, sep, arg = text.partition(":")
    try:
        if sep and kind == "exponential":
            p = float(arg)
            fn: Callable[[int], float] = lambda i: p**i
            check = [p]
        elif sep and kind == "linear":
            k = float(arg)
            if k <= 0:
                raise ValueError
            fn = lambda i: max(0.0, 1.0 - i / k)
            check = [0.0]
        elif sep and kind == "constant":
            b = float(arg)
            fn = lambda i: b
            check = [b]
        elif not sep:
            values = [float(v) for v in text.split(",")]
            fn = lambda i: values[min(i, len(values) - 1)]
            check = values
        else:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"bad beta schedule {spec!r}: use 'exponential:P', 'linear:K' (K > 0), 'constant:B' or a list '1,0.5,0'"
        ) from None
    if any(not 0.0 <= v <= 1.0 for v in check):
        raise ValueError(f"bad beta schedule {spec!r}: betas must lie in [0, 1]")
    return fn


@dataclass(frozen=True)
class DAggerConfig:
    """DAgger's own hyperparameters (the retraining uses a :class:`BCConfig`)."""

    iterations: int = setting(4, "data-collection rounds after the initial BC")
    episodes_per_iteration: int = setting(10, "student-driven episodes per round", flag="--dagger-episodes")
    beta: str = setting("exponential:0.5", "expert-mixing schedule of round i >= 1: exponential:P, linear:K, "
                                           "constant:B or a list 1,0.5,0")
    epochs_per_iteration: int = setting(15, "BC epochs on the grown data set each round", flag="--dagger-epochs")
    noise: float = setting(0.0, "DART noise on executed actions while collecting", flag="--dagger-noise")
    warm_start: bool = setting(True, "continue each round from the current student rather than "
                                     "re-initialising it")

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.episodes_per_iteration <= 0 or self.epochs_per_iteration <= 0:
            raise ValueError(
                f"DAggerConfig needs iterations >= 0 and positive episodes/epochs per iteration, got {self}"
            )
        beta_schedule(self.beta)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class DAgger:
    """The DAgger loop around a :class:`BCTrainer`. ``make_env`` builds the task env; ``expert``
    labels; ``seed_base`` fixes the reset seeds of the collected episodes; ``reinit`` (optional)
    re-initialises the student's weights when ``warm_start`` is off.

    State: ``iteration`` (the round being trained or just trained; 0 = the initial BC), ``data``
    (the aggregate), ``trainer`` (the current round's BC trainer), ``history`` (one dict per
    round). :meth:`run` continues from any such state, so a resumed run picks up mid-round.
    """

    def __init__(self, policy: RecurrentPolicy, demos: Demonstrations, make_env: Callable[[], Any], expert: Any,
                 config: DAggerConfig, bc: BCConfig, seed_base: int = 0,
                 reinit: Optional[Callable[[], None]] = None, noise_period_power: float = 0.0) -> None:
        self.policy = policy
        self.make_env = make_env
        self.expert = expert
        self.config = config
        self.bc = bc
        self.beta = beta_schedule(config.beta)
        self.seed_base = int(seed_base)
        self.reinit = reinit
        self.noise_period_power = float(noise_period_power)  # of the rounds' DART noise (run_episodes)
        train, self.val_demos = demos.split(bc.val_fraction, seed=bc.seed)
        self.data = train
        self.iteration = 0
        self.history: List[Dict[str, Any]] = []
        self.trainer = BCTrainer(policy, self.data, self.val_demos, bc, fit_normalizer=True)

    def round_config(self, iteration: int) -> BCConfig:
        if iteration == 0:
            return self.bc
        return BCConfig(**{**self.bc.to_dict(), "epochs": self.config.epochs_per_iteration,
                           "seed": self.bc.seed + iteration})

    def collect(self) -> Dict[str, Any]:
        """Run the next round's student-driven episodes, label them with the expert, add them to
        the data and set up that round's trainer."""
        i = self.iteration + 1
        beta = float(self.beta(i))
        seeds = [self.seed_base + 100_000 * i + k for k in range(self.config.episodes_per_iteration)]
        rng = np.random.default_rng([self.seed_base, i, 0xDA])
        result = run_episodes(self.make_env, seeds, policy=self.policy, expert=self.expert, beta=beta,
                              noise=self.config.noise, noise_period_power=self.noise_period_power, rng=rng, record=True,
                              metadata={"dagger_iteration": i})
        self.data = self.data.concat(result.demos)
        self.iteration = i
        if not self.config.warm_start and self.reinit is not None:
            self.reinit()
        self.trainer = BCTrainer(self.policy, self.data, self.val_demos, self.round_config(i), fit_normalizer=False,
                                 state_head=self.trainer.state_head)
        info = {"iteration": i, "beta": beta, "rollout_return": float(result.returns.mean()),
                "rollout_length": float(result.lengths.mean()), "data_episodes": self.data.n_episodes,
                "data_steps": self.data.n_steps}
        self.history.append(info)
        return info

    def run(self, on_epoch: Optional[Callable[[Dict[str, float]], None]] = None,
            on_round: Optional[Callable[["DAgger"], None]] = None) -> RecurrentPolicy:
        """Finish the current round's training, then collect and train every remaining round.
        ``on_round`` is called after each round's training (checkpoint there)."""
        while True:
            if self.trainer.epoch < self.trainer.config.epochs:
                metrics = self.trainer.fit(on_epoch)
                if self.history and self.history[-1]["iteration"] == self.iteration:
                    self.history[-1]["val_loss"] = metrics.get("val_loss")
                if on_round is not None:
                    on_round(self)
            if self.iteration >= self.config.iterations:
                return self.policy
            self.collect()

    # -- resume --------------------------------------------------------------------------------
    def progress(self) -> Dict[str, Any]:
        """JSON-able state besides the weights, the optimiser and :attr:`data` (save those apart)."""
        trainer_progress, _ = self.trainer.state_dict()
        return {"iteration": self.iteration, "history": self.history, "trainer": trainer_progress}

    def restore(self, progress: Dict[str, Any], data: Demonstrations, optimizer_state: Dict[str, Any],
                head_tensors: Optional[Dict[str, Any]] = None) -> None:
        """Continue from :meth:`progress`, the saved aggregate, the optimiser state and the state
        head's weights (``BCTrainer.head_tensors``; load the policy's weights and normaliser
        separately)."""
        self.iteration = int(progress["iteration"])
        self.history = list(progress["history"])
        self.data = data
        self.trainer = BCTrainer(self.policy, self.data, self.val_demos, self.round_config(self.iteration),
                                 fit_normalizer=False)
        self.trainer.load_state_dict(progress["trainer"], optimizer_state, head_tensors)
