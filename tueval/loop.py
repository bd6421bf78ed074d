"""The step loop: call a step function until the last step, then run the hooks whose condition holds.

Logging, checkpoints, snapshots and progress are hooks; anything else that must happen every N steps or every
epoch (e.g. evaluating the model along its trajectory) is one more hook, without touching the loop:
``every_n_steps(5, fn)``, ``every_epoch(fn)``, ``at_steps((10, 20), fn)``. A hook sees the LoopState after the
step (``state.step`` = steps done). A hook that must not change the run it observes (an evaluation) is wrapped
in ``isolated(fn)``: torch's global RNG is restored after it, so the run trains exactly as without it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence


@dataclass
class LoopState:
    """Where the loop is: ``step`` steps done of ``total_steps``, ``log`` one row per step done; the loop ends
    early after ``stop_step`` steps (0 = never)."""

    step: int
    total_steps: int
    steps_per_epoch: int
    log: list[dict] = field(default_factory=list)
    stop_step: int = 0

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return self.step // self.steps_per_epoch

    @property
    def finished(self) -> bool:
        """All ``total_steps`` done."""
        return self.step >= self.total_steps

    @property
    def done(self) -> bool:
        """Finished, or stopped at ``stop_step``."""
        return self.finished or 0 < self.stop_step <= self.step


@dataclass(frozen=True)
class Hook:
    """``fn(state)`` after every step where ``when(state)`` holds."""

    fn: Callable[[LoopState], None]
    when: Callable[[LoopState], bool]
    name: str = ""


def every_step(fn: Callable[[LoopState], None], name: str = "") -> Hook:
    """After every step."""
    return Hook(fn, lambda s: True, name)


def every_n_steps(n: int, fn: Callable[[LoopState], None], final: bool = True, name: str = "") -> Hook:
    """After every ``n``-th step (and after the last one when ``final``)."""
    return Hook(fn, lambda s: s.step % n == 0 or (final and s.finished), name)


def every_epoch(fn: Callable[[LoopState], None], name: str = "") -> Hook:
    """After the last step of every epoch."""
    return Hook(fn, lambda s: s.step % s.steps_per_epoch == 0, name)


def at_steps(steps: Iterable[int], fn: Callable[[LoopState], None], name: str = "") -> Hook:
    """After the listed step counts."""
    wanted = frozenset(int(x) for x in steps)
    return Hook(fn, lambda s: s.step in wanted, name)


def isolated(fn: Callable[[LoopState], None]) -> Callable[[LoopState], None]:
    """``fn`` run under a forked torch RNG (the training's random stream is the same with or without it)."""
    import torch

    def wrapped(state: LoopState) -> None:
        with torch.random.fork_rng():
            fn(state)

    return wrapped


def run_loop(step_fn: Callable[[int], dict], state: LoopState, hooks: Sequence[Hook] = (),
             stop_after: int | None = None) -> LoopState:
    """Run ``step_fn(step) -> log row`` from ``state.step`` to the end (or ``state.stop_step``), the hooks after
    each step.
    ``stop_after``: raise KeyboardInterrupt once that many steps are done (a simulated crash)."""
    while not state.done:
        state.log.append(step_fn(state.step))
        state.step += 1
        for h in hooks:
            if h.when(state):
                h.fn(state)
        if stop_after is not None and state.step >= stop_after and not state.done:
            raise KeyboardInterrupt(f"stopped after {state.step} steps (simulated crash)")
    return state
