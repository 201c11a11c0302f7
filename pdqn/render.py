"""Animated GIFs of a greedy policy playing a MinAtar game (greedy over Q, or over what a run's acting gives:
the termination veto or search, :data:`pdqn.rollout.ActingQ`).

Frames: an episode of ``n`` steps gives exactly ``n`` frames. Frame ``t`` (1-based) shows the newest
observation frame *after* the agent's ``t``-th action, the one the environment returned before any
auto-reset (so the last frame is the terminal screen), with a caption of the step number ``t`` and
the running score, the sum of the rewards of steps ``1..t``: the last frame shows the episode's return.
The starting screen before the first action is not shown. An episode lasts until the game ends it
(termination or the game's own time limit) or until the step cap, whichever comes first. Several
episodes are played back to back, the step and score restarting with each.

Colours follow gymnax's MinAtar visualiser (``gymnax.visualize.vis_minatar``): channel ``c`` of
``C`` gets seaborn's ``color_palette("cubehelix", C)[c]`` (matplotlib's cubehelix colormap sampled
at ``C`` interior points), a cell with no channel on is black, and where several channels are on
the highest channel wins. Each cell is ``cell_pixels`` square; the caption is a bar below the grid.
"""

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, UInt8
from PIL import Image, ImageDraw, ImageFont

from pdqn.envs import VecEnv, make_env
from pdqn.networks import QNetwork
from pdqn.rollout import ActingQ

CELL_PIXELS = 16
"""Side of one grid cell in pixels (a 10x10 MinAtar grid is 160x160)."""
CAPTION_PIXELS = 16
"""Height of the caption bar below the grid."""
FRAME_MS = 60
"""How long each frame shows (GIFs count in 10 ms units)."""
END_OF_EPISODE_MS = 1000
"""How long the last frame of each episode shows, so the final score can be read."""

BACKGROUND_RGB = (0, 0, 0)
CAPTION_BACKGROUND_RGB = (32, 32, 32)
CAPTION_TEXT_RGB = (255, 255, 255)


class RenderError(ValueError):
    """A GIF that cannot be written where asked, or a request that cannot be played."""


@dataclasses.dataclass(frozen=True)
class Episode:
    """One recorded greedy episode: the newest observation frame and the reward after each step."""

    frames: Bool[np.ndarray, "steps height width channels"]
    rewards: Float[np.ndarray, " steps"]
    ended: bool
    """Whether the game ended the episode (termination or its own time limit) rather than the step cap."""

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())


# ---- images -----------------------------------------------------------------------------


def channel_colours(num_channels: int) -> UInt8[np.ndarray, "{num_channels} 3"]:
    """gymnax's colour of each observation channel, as 8-bit RGB."""
    from matplotlib import colormaps

    # seaborn's color_palette("cubehelix", n) samples the colormap at n points strictly inside (0, 1).
    samples = np.linspace(0.0, 1.0, num_channels + 2)[1:-1]
    rgb = colormaps["cubehelix"](samples)[:, :3]
    return np.round(rgb * 255).astype(np.uint8)


def palette(num_channels: int) -> list[int]:
    """The GIF palette: index 0 background, ``1..C`` the channels, then caption background and text."""
    colours = [BACKGROUND_RGB, *map(tuple, channel_colours(num_channels)), CAPTION_BACKGROUND_RGB, CAPTION_TEXT_RGB]
    return [int(value) for colour in colours for value in colour]


def cell_indices(frame: Bool[np.ndarray, "height width channels"]) -> UInt8[np.ndarray, "height width"]:
    """Palette index of each cell: ``c + 1`` for the highest channel ``c`` that is on, 0 where none is."""
    numbered = frame * np.arange(1, frame.shape[-1] + 1, dtype=np.uint8)
    return numbered.max(axis=-1).astype(np.uint8)


@functools.cache
def caption_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default()


def caption_bar(text: str, *, width: int, num_channels: int) -> UInt8[np.ndarray, "caption_height {width}"]:
    """Palette indices of a caption bar showing ``text``."""
    background, ink = num_channels + 1, num_channels + 2
    image = Image.new("L", (width, CAPTION_PIXELS), background)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # no anti-aliasing: the grey levels in between would be other palette indices
    draw.text((3, 2), text, fill=ink, font=caption_font())
    return np.asarray(image, np.uint8)


def caption_text(*, step: int, score: float, episode: int, episodes: int) -> str:
    """The caption of a frame; the step number also keeps consecutive frames distinct, which PIL
    needs to keep every frame (it merges identical consecutive GIF frames into one)."""
    prefix = f"ep {episode}/{episodes}  " if episodes > 1 else ""
    return f"{prefix}step {step}  score {score:g}"


def render_frame(
    frame: Bool[np.ndarray, "height width channels"], *, caption: str, cell_pixels: int = CELL_PIXELS
) -> Image.Image:
    """One GIF frame: the grid upscaled to ``cell_pixels`` per cell above a caption bar, in palette mode."""
    num_channels = frame.shape[-1]
    grid = np.repeat(np.repeat(cell_indices(frame), cell_pixels, axis=0), cell_pixels, axis=1)
    bar = caption_bar(caption, width=grid.shape[1], num_channels=num_channels)
    image = Image.fromarray(np.concatenate([grid, bar], axis=0))
    image.putpalette(palette(num_channels))  # turns the "L" image into a "P" image over these indices
    return image


def frame_size(frame_shape: tuple[int, ...], cell_pixels: int = CELL_PIXELS) -> tuple[int, int]:
    """(width, height) in pixels of every frame for observations of ``frame_shape`` (height, width, ...)."""
    return frame_shape[1] * cell_pixels, frame_shape[0] * cell_pixels + CAPTION_PIXELS


def episode_images(episodes: Sequence[Episode], cell_pixels: int = CELL_PIXELS) -> list[Image.Image]:
    """Every frame of ``episodes`` back to back, captioned with the step and running score."""
    images = []
    for number, episode in enumerate(episodes, start=1):
        scores = np.cumsum(episode.rewards, dtype=np.float64)
        for t in range(episode.steps):
            text = caption_text(step=t + 1, score=float(scores[t]), episode=number, episodes=len(episodes))
            images.append(render_frame(episode.frames[t], caption=text, cell_pixels=cell_pixels))
    return images


def frame_durations(episodes: Sequence[Episode]) -> list[int]:
    """Milliseconds per frame: :data:`FRAME_MS`, the last frame of each episode held longer."""
    durations = []
    for episode in episodes:
        durations += [FRAME_MS] * (episode.steps - 1) + [END_OF_EPISODE_MS]
    return durations


# ---- files ------------------------------------------------------------------------------


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def check_gif_path(path: Path) -> None:
    """Raise :class:`RenderError` unless a GIF can be written to ``path`` (tried with a probe file)."""
    if path.suffix.lower() != ".gif":
        raise RenderError(f"GIF path {path} does not end in .gif")
    if path.is_dir():
        raise RenderError(f"GIF path {path} is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise RenderError(f"GIF path {path}: folder {folder} does not exist or is not a directory")
    probe = _temporary_path(path)
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RenderError(f"GIF path {path}: folder {folder} is not writable ({err.strerror})") from None


def write_gif(path: Path, images: Sequence[Image.Image], durations_ms: Sequence[int]) -> None:
    """Write ``images`` as a looping GIF through a temporary file, fsynced and renamed over ``path``:
    a file already at ``path`` stays whole until the new one is complete."""
    if not images or len(images) != len(durations_ms):
        raise RenderError(f"{len(images)} frames and {len(durations_ms)} durations: need as many, at least one")
    tmp = _temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            images[0].save(
                handle, format="GIF", save_all=True, append_images=list(images[1:]), duration=list(durations_ms), loop=0
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---- playing ----------------------------------------------------------------------------


@eqx.filter_jit
def _play(
    env: VecEnv, q_net: QNetwork, key: PRNGKeyArray, max_steps: Int[Array, ""], acting_q: ActingQ | None = None
) -> tuple[Bool[Array, "limit height width c"], Float[Array, " limit"], Bool[Array, " limit"], Bool[Array, ""]]:
    """The game's whole step limit of greedy steps of one environment (greedy over ``acting_q``'s values, if
    given): the newest frame and reward after each step, whether each step belongs to the first episode cut at
    ``max_steps``, and whether the game ended that episode within the cap. The cap is traced, so one compile
    serves every cap."""
    k_reset, k_steps = jax.random.split(key)
    obs, state, stats = env.reset(k_reset)
    channels = env.frame_shape[-1]

    def step(carry, t_and_key):
        obs, state, stats, playing = carry
        t, k_step = t_and_key
        taken = playing & (t < max_steps)
        q = q_net(obs)
        if acting_q is not None:
            q, _ = acting_q(q_net, q, obs, state, jax.random.fold_in(k_step, 1))
        action = jnp.argmax(q, axis=-1)
        out, state, stats = env.step(k_step, state, stats, action)
        # final_obs is the screen the action led to, before the auto-reset that out.obs already shows.
        record = (out.final_obs[0, ..., -channels:] > 0.5, out.reward[0], taken, taken & out.done[0])
        return (out.obs, state, stats, taken & ~out.done[0]), record

    limit = env.max_episode_steps  # the game truncates there, so no episode is longer
    steps = (jnp.arange(limit), jax.random.split(k_steps, limit))
    _, (frames, rewards, taken, ended) = jax.lax.scan(step, (obs, state, stats, jnp.asarray(True)), steps)
    return frames, rewards, taken, jnp.any(ended)


@functools.cache
def single_env(env_name: str, frame_stack: int, sticky_actions: float = 0.0) -> VecEnv:
    """One environment of the game, the same object every call: the compiled :func:`_play` is keyed
    on it, so later recordings of the game skip the compile (seconds)."""
    return make_env(env_name, 1, frame_stack, sticky_actions=sticky_actions)


def record_episodes(
    *,
    env_name: str,
    frame_stack: int,
    q_net: QNetwork,
    key: PRNGKeyArray,
    episodes: int = 1,
    max_steps: int | None = None,
    sticky_actions: float = 0.0,
    acting_q: ActingQ | None = None,
) -> list[Episode]:
    """``episodes`` greedy episodes of ``q_net`` on one gymnax environment (greedy over ``acting_q``'s values,
    if given), each cut at ``max_steps`` steps (None: the game's own time limit), with sticky actions of
    probability ``sticky_actions``."""
    env = single_env(env_name, frame_stack, sticky_actions)
    cap = env.max_episode_steps if max_steps is None else max_steps
    if not (isinstance(episodes, int) and episodes >= 1):
        raise RenderError(f"episodes={episodes!r} is invalid: must be a positive integer")
    if not (isinstance(cap, int) and cap >= 1):
        raise RenderError(f"max_steps={max_steps!r} is invalid: must be a positive integer")
    traced_cap = jnp.asarray(min(cap, env.max_episode_steps))  # the game's own limit ends every episode anyway
    recorded = []
    for episode_key in jax.random.split(key, episodes):
        frames, rewards, in_episode, ended = jax.device_get(_play(env, q_net, episode_key, traced_cap, acting_q))
        steps = int(in_episode.sum())  # a prefix: once the episode is over every later step is outside it
        recorded.append(Episode(frames=frames[:steps], rewards=rewards[:steps], ended=bool(ended)))
    return recorded


def write_policy_gif(
    path: Path,
    *,
    env_name: str,
    frame_stack: int,
    q_net: QNetwork,
    key: PRNGKeyArray | int,
    episodes: int = 1,
    max_steps: int | None = None,
    cell_pixels: int = CELL_PIXELS,
    sticky_actions: float = 0.0,
    acting_q: ActingQ | None = None,
) -> list[Episode]:
    """Play ``episodes`` greedy episodes of one seed's ``q_net`` (greedy over ``acting_q``'s values, if given:
    the run's veto or search) and write them back to back as an animated GIF at ``path`` (atomically); the
    recorded episodes (their returns and lengths).

    ``key`` may be a PRNG key or an integer seed. ``sticky_actions`` is the probability that a step repeats
    the previously executed action (see :class:`pdqn.envs.VecEnv`); a frame shows what was executed. See the
    module docstring for which frames appear.
    """
    check_gif_path(path)
    if isinstance(key, int):
        key = jax.random.PRNGKey(key)
    played = record_episodes(
        env_name=env_name,
        frame_stack=frame_stack,
        q_net=q_net,
        key=key,
        episodes=episodes,
        max_steps=max_steps,
        sticky_actions=sticky_actions,
        acting_q=acting_q,
    )
    write_gif(path, episode_images(played, cell_pixels), frame_durations(played))
    return played
