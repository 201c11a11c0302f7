"""Greedy returns of a saved policy: ``python -m pdqn.experiments.evaluate RUN_DIR [--episodes N] [--minatar]``
or a GIF of it playing: ``... RUN_DIR --gif PATH [--episodes N] [--max-steps N]``.

Loads RUN_DIR/policy.eqx (written at the end of training) and plays N complete greedy
episodes on gymnax and, with ``--minatar``, on the original MinAtar implementation (NumPy)
to check that the policy transfers. Prints JSON to stdout.

A run that acts with its world model in its evaluations (the termination veto, ``--dyna.veto.*``, or
search, ``--dyna.search.*``) is played the same way here, with its saved model: its Q-network alone
can be a much weaker policy. ``--greedy`` plays greedy Q instead; the JSON's ``acting`` says which.
MinAtar's episodes have no gymnax state for the model to step, so ``--minatar`` needs greedy Q.

Both play with the same sticky-action probability: ``--sticky P``, by default the run's own
``--sticky-actions`` (what its greedy evaluations used), so that the two figures compare;
``--sticky 0.1`` is MinAtar's published protocol.

With ``--gif PATH`` it instead records N greedy gymnax episodes (default 1), each cut at
``--max-steps``, and writes them back to back as an animated GIF (see :mod:`pdqn.render` for
which frames appear); the JSON then holds the recorded episodes' returns and lengths.

Gymnax and MinAtar agree on the observation channels of every game (same order, e.g. breakout
paddle/ball/trail/brick) and gymnax's minimal action indices map to MinAtar's action codes
through ``Environment.minimal_action_set()``. MinAtar has no episode time limit; episodes are
cut at gymnax's ``max_steps_in_episode`` (``--max-steps``) and the cut ones are counted.
"""

import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from pdqn.cli import fail, interruptible, parse
from pdqn.config import Config, ConfigError

@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate a saved greedy policy on gymnax (and optionally the original MinAtar)."""

    run_dir: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="RUN_DIR")]]
    """Run directory holding policy.eqx and policy.json."""
    episodes: int | None = None
    """Greedy episodes per implementation (default: 100 to score, 1 with --gif)."""
    seed_index: int = 0
    """Which of the run's seeds (0-based index into its seeds) to evaluate."""
    minatar: bool = False
    """Also evaluate on the original MinAtar implementation (pip package ``minatar``)."""
    sticky: float | None = None
    """Sticky-action probability of the gymnax, MinAtar and --gif episodes alike (default: the run's own
    sticky_actions; MinAtar's protocol is 0.1)."""
    seed: int = 0
    """Seed of the evaluation episodes."""
    max_steps: int | None = None
    """Step cap of each MinAtar or --gif episode (default: gymnax's max_steps_in_episode for the game)."""
    gif: Path | None = None
    """Write the greedy episodes as an animated GIF here (a .gif path in an existing, writable folder)
    instead of scoring them."""
    greedy: bool = False
    """Act greedily on the Q-network alone, even where the run acts with its world model in evaluation (the
    termination veto or search)."""

    def __post_init__(self) -> None:
        if self.episodes is not None and (not isinstance(self.episodes, int) or self.episodes < 1):
            raise ConfigError(f"episodes={self.episodes!r} is invalid: must be a positive integer (>= 1)")
        if not isinstance(self.seed_index, int) or self.seed_index < 0:
            raise ConfigError(f"seed_index={self.seed_index!r} is invalid: must be a non-negative integer")
        if self.sticky is not None and not (math.isfinite(self.sticky) and 0.0 <= self.sticky < 1.0):
            raise ConfigError(f"sticky={self.sticky!r} is invalid: must be in [0, 1)")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed={self.seed!r} is invalid: must be an integer in [0, 2**31)")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ConfigError(f"max_steps={self.max_steps!r} is invalid: must be a positive integer (>= 1)")
        if self.gif is not None and self.minatar:
            raise ConfigError("--gif records gymnax episodes and cannot be combined with --minatar")

    @property
    def num_episodes(self) -> int:
        if self.episodes is not None:
            return self.episodes
        return 1 if self.gif is not None else 100

    def sticky_for(self, config: Config) -> float:
        """--sticky, or by default the run's own sticky-action probability."""
        return config.sticky_actions if self.sticky is None else self.sticky


def summary(returns: np.ndarray) -> dict[str, Any]:
    returns = np.asarray(returns, np.float64)
    # null for one episode (no spread to measure): NaN is not JSON, and jq and most parsers refuse it
    stderr = float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else None
    return {"mean": float(returns.mean()), "stderr": stderr, "episodes": returns.tolist()}


def evaluate_gymnax(
    env_name: str, q_net: Any, episodes: int, seed: int, frames: int = 1, sticky: float = 0.0, acting_q: Any = None
) -> np.ndarray:
    """One greedy episode in each of ``episodes`` vectorised gymnax environments (greedy over ``acting_q``'s
    values, if given: :data:`pdqn.rollout.ActingQ`)."""
    import equinox as eqx
    import jax

    from pdqn.envs import make_env
    from pdqn.evaluation import evaluate_greedy

    env = make_env(env_name, episodes, frames, sticky_actions=sticky)
    returns = eqx.filter_jit(evaluate_greedy)(env, q_net, jax.random.PRNGKey(seed), acting_q)
    return np.asarray(returns)


def minatar_environment(env_name: str, sticky: float, seed: int) -> Any:
    from minatar import Environment

    env = Environment(env_name, sticky_action_prob=sticky)  # MinAtar names its games as pdqn does
    env.seed(seed)
    return env


def evaluate_minatar(
    env_name: str, q_net: Any, episodes: int, seed: int, sticky: float, max_steps: int, frames: int = 1
) -> tuple[np.ndarray, int]:
    """Greedy episodes on the original MinAtar; returns the returns and how many hit ``max_steps``.

    With ``frames > 1`` the policy sees the last ``frames`` frames stacked as in training."""
    import equinox as eqx
    import jax.numpy as jnp

    from pdqn.envs import first_stack, push_frame

    env = minatar_environment(env_name, sticky, seed)
    actions = list(env.minimal_action_set())
    act = eqx.filter_jit(lambda net, obs: jnp.argmax(net(obs[None].astype(jnp.float32)), axis=-1)[0])
    returns, cut = [], 0
    for _ in range(episodes):
        env.reset()
        stack = first_stack(jnp.asarray(env.state(), jnp.float32), frames)
        total, steps, terminal = 0.0, 0, False
        while not terminal and steps < max_steps:
            action = int(act(q_net, stack))
            reward, terminal = env.act(actions[action])
            stack = push_frame(stack, jnp.asarray(env.state(), jnp.float32))
            total += float(reward)
            steps += 1
        cut += not terminal
        returns.append(total)
    return np.asarray(returns), cut


def step_cap(options: EvalArgs, env_name: str) -> int:
    """--max-steps, or by default the game's own episode limit in gymnax."""
    from pdqn.envs import make_env

    return options.max_steps if options.max_steps is not None else make_env(env_name, 1).max_episode_steps


def score(options: EvalArgs, config: Config, q_net: Any, acting_q: Any) -> dict[str, Any]:
    """Returns of complete greedy episodes on gymnax and, with --minatar, on MinAtar."""
    sticky = options.sticky_for(config)
    returns = evaluate_gymnax(
        config.env,
        q_net,
        episodes=options.num_episodes,
        seed=options.seed,
        frames=config.frame_stack,
        sticky=sticky,
        acting_q=acting_q,
    )
    result = {"gymnax": {**summary(returns), "sticky_action_prob": sticky}}
    if options.minatar:
        try:
            import minatar  # noqa: F401
        except ImportError:
            fail("--minatar needs the minatar package: pip install minatar")
        max_steps = step_cap(options, config.env)
        returns, cut = evaluate_minatar(
            config.env,
            q_net,
            episodes=options.num_episodes,
            seed=options.seed,
            sticky=sticky,
            max_steps=max_steps,
            frames=config.frame_stack,
        )
        result["minatar"] = {
            **summary(returns),
            "sticky_action_prob": sticky,
            "max_steps": max_steps,
            "episodes_cut_at_max_steps": cut,
        }
    return result


def record_gif(gif: Path, options: EvalArgs, config: Config, q_net: Any, acting_q: Any) -> dict[str, Any]:
    """Write the GIF of the recorded greedy episodes; their returns and lengths."""
    from pdqn.render import RenderError, write_policy_gif

    try:
        played = write_policy_gif(
            gif,
            env_name=config.env,
            frame_stack=config.frame_stack,
            q_net=q_net,
            key=options.seed,
            episodes=options.num_episodes,
            max_steps=options.max_steps,
            sticky_actions=options.sticky_for(config),
            acting_q=acting_q,
        )
    except RenderError as err:
        fail(str(err))
    except OSError as err:  # e.g. the disk filled up; the file already at the path is untouched
        fail(f"could not write GIF {gif}: {err.strerror or err}")
    return {
        "gif": {
            "path": str(gif),
            **summary(np.asarray([episode.episode_return for episode in played])),
            "steps": [episode.steps for episode in played],
            "sticky_action_prob": options.sticky_for(config),
            "max_steps": step_cap(options, config.env),
            "episodes_cut_at_max_steps": sum(not episode.ended for episode in played),
        }
    }


def parse_args(args: Sequence[str]) -> EvalArgs:
    """The command line's options, without loading or playing anything; bad input exits 2 with one
    ``error:`` line, --help exits 0."""
    return parse(EvalArgs, args, description=__doc__, prog="python -m pdqn.experiments.evaluate")


def main(args: list[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if args is None else args)
    with interruptible("evaluate"):
        return evaluate(options)


def run_acting(options: EvalArgs, config: Config, policy: dict[str, Any]) -> tuple[str, Any]:
    """What the evaluated policy acts on, named, and its :data:`pdqn.rollout.ActingQ` (None: greedy Q): as the run's
    own evaluations did, with the seed's saved world model, unless --greedy."""
    from pdqn.checkpoint import select_seed
    from pdqn.search import Search
    from pdqn.train import Trainer

    trainer = Trainer(config)
    if options.greedy or not trainer.acts_beyond_q(evaluation=True):
        return "greedy Q", None
    acting_q = trainer.acting_q(select_seed(policy["planner"], options.seed_index), evaluation=True)
    return ("search" if isinstance(trainer.acting, Search) else "termination veto"), acting_q


def evaluate(options: EvalArgs) -> int:
    """Load the run's final policy, then score it or record its GIF; print the result as one JSON object."""
    from pdqn.checkpoint import CheckpointError, load_policy, select_seed
    from pdqn.render import RenderError, check_gif_path

    if options.gif is not None:
        try:  # before anything is loaded or played
            check_gif_path(options.gif)
        except RenderError as err:
            fail(str(err))
    try:
        config, policy = load_policy(options.run_dir)
    except CheckpointError as err:
        fail(str(err))
    if options.seed_index >= config.num_seeds:
        fail(f"seed_index={options.seed_index} is invalid: the run has {config.num_seeds} seed(s)")
    q_net = select_seed(policy["q_net"], options.seed_index)
    acting, acting_q = run_acting(options, config, policy)
    if acting_q is not None and options.minatar:
        fail(f"--minatar plays greedy Q only (this run acts with {acting} in evaluation): add --greedy")
    result: dict[str, Any] = {
        "run_dir": str(options.run_dir),
        "alg": config.alg,
        "env": config.env,
        "seed_index": options.seed_index,
        "training_seed": config.seed + options.seed_index,
        "acting": acting,
    }
    if options.gif is not None:
        result |= record_gif(options.gif, options, config, q_net, acting_q)
    else:
        result |= score(options, config, q_net, acting_q)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
