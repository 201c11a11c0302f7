"""GIFs of a greedy policy: one frame per step up to the cap, gymnax's colours, the score in the caption,
and an atomic write."""

import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from pdqn import render
from pdqn.envs import make_env
from pdqn.networks import QNetwork

FREEWAY_UP = 1  # gymnax's minimal Freeway actions: noop, up, down
BREAKOUT_NOOP = 0


def constant_policy(game: str, action: int, frames: int = 1) -> QNetwork:
    """A Q-network that prefers ``action`` whatever it sees (zero head weights, a one-hot bias)."""
    env = make_env(game, 1, frames)
    q_net = QNetwork(env.obs_shape, env.num_actions, key=jax.random.PRNGKey(0))
    bias = jnp.zeros(env.num_actions).at[action].set(1.0)
    return eqx.tree_at(lambda net: (net.head.weight, net.head.bias), q_net, (jnp.zeros_like(q_net.head.weight), bias))


def decoded_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


def test_channel_colours_are_gymnax_visualiser_colours():
    sns = pytest.importorskip("seaborn")  # what gymnax.visualize.vis_minatar colours the channels with
    for channels in (4, 6, 7, 10):
        expected = np.round(np.asarray(sns.color_palette("cubehelix", channels)) * 255).astype(np.uint8)
        np.testing.assert_array_equal(render.channel_colours(channels), expected)


def test_a_cell_gets_its_channels_colour_and_empty_cells_the_background(tmp_path):
    channels, cell = 6, 4
    frame = np.zeros((10, 10, channels), bool)
    for c in range(channels):
        frame[c, 9 - c, c] = True
    frame[8, 8, [1, 4]] = True  # several channels on: the highest wins, as in gymnax's visualiser
    path = tmp_path / "colours.gif"
    image = render.render_frame(frame, caption="x", cell_pixels=cell)
    render.write_gif(path, [image], [100])
    (decoded,) = decoded_frames(path)
    colours = render.channel_colours(channels)

    def cell_pixels(row: int, col: int) -> np.ndarray:
        return decoded[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell].reshape(-1, 3)

    for c in range(channels):
        assert (cell_pixels(c, 9 - c) == colours[c]).all(), f"channel {c}"
    assert (cell_pixels(8, 8) == colours[4]).all()
    assert (cell_pixels(0, 0) == render.BACKGROUND_RGB).all() and (cell_pixels(9, 0) == render.BACKGROUND_RGB).all()


def test_frames_are_one_per_step_up_to_the_cap_and_the_documented_size(tmp_path):
    # Freeway episodes last the game's 2500 steps whatever the policy does: a cap of 25 cuts each at 25.
    path = tmp_path / "freeway.gif"
    q_net = constant_policy("freeway", FREEWAY_UP)
    played = render.write_policy_gif(
        path, env_name="freeway", frame_stack=1, q_net=q_net, key=0, episodes=2, max_steps=25
    )
    assert [episode.steps for episode in played] == [25, 25] and not any(episode.ended for episode in played)
    with Image.open(path) as gif:
        assert gif.n_frames == 50
        assert gif.size == render.frame_size((10, 10, 7)) == (160, 10 * 16 + render.CAPTION_PIXELS)
        for index in range(gif.n_frames):
            gif.seek(index)
            assert gif.size == (160, 176)
    # The frames are the game's screens after each step: the chicken (channel 0) climbs from the bottom row
    # (a car it runs into pushes it back down now and then).
    chicken_rows = [np.argwhere(frame[..., 0])[0, 0] for frame in played[0].frames]
    assert chicken_rows[0] == 9 and min(chicken_rows) <= 5


def test_an_episode_the_game_ends_is_cut_only_by_a_smaller_cap(tmp_path):
    # A Breakout paddle that never moves loses the ball after a handful of steps.
    q_net = constant_policy("breakout", BREAKOUT_NOOP)
    key = jax.random.PRNGKey(3)
    (whole,) = render.record_episodes(env_name="breakout", frame_stack=1, q_net=q_net, key=key)
    assert whole.ended and 1 < whole.steps < 1000
    # The last frame is the terminal screen, not the next episode's start: the ball (channel 1) has
    # reached the bottom row, where a new episode's ball starts on row 3.
    assert np.argwhere(whole.frames[-1][..., 1])[:, 0].tolist() == [9]
    (at_cap,) = render.record_episodes(env_name="breakout", frame_stack=1, q_net=q_net, key=key, max_steps=whole.steps)
    (cut,) = render.record_episodes(env_name="breakout", frame_stack=1, q_net=q_net, key=key, max_steps=whole.steps - 1)
    assert at_cap.ended and at_cap.steps == whole.steps
    assert not cut.ended and cut.steps == whole.steps - 1
    np.testing.assert_array_equal(cut.frames, whole.frames[:-1])
    path = tmp_path / "breakout.gif"
    render.write_gif(path, render.episode_images([whole]), render.frame_durations([whole]))
    assert len(decoded_frames(path)) == whole.steps


def test_caption_shows_the_step_and_the_running_score(tmp_path):
    path = tmp_path / "score.gif"
    q_net = constant_policy("freeway", FREEWAY_UP)
    (episode,) = render.write_policy_gif(
        path, env_name="freeway", frame_stack=1, q_net=q_net, key=jax.random.PRNGKey(1), max_steps=150
    )
    assert episode.episode_return >= 1  # this key's chicken crosses the road within the cap
    assert render.caption_text(step=7, score=3.0, episode=1, episodes=1) == "step 7  score 3"
    assert render.caption_text(step=7, score=3.0, episode=2, episodes=4) == "ep 2/4  step 7  score 3"
    decoded = decoded_frames(path)
    grid_height = 10 * render.CELL_PIXELS
    score = 0.0
    for t, frame in enumerate(decoded):
        score += float(episode.rewards[t])
        expected = render.render_frame(episode.frames[t], caption=f"step {t + 1}  score {score:g}")
        np.testing.assert_array_equal(frame, np.asarray(expected.convert("RGB")), err_msg=f"frame {t}")
    assert score == episode.episode_return
    # The caption really shows the score: the last frame's bar differs from one with the score one lower.
    lower = render.render_frame(episode.frames[-1], caption=f"step {episode.steps}  score {score - 1:g}")
    assert not np.array_equal(decoded[-1][grid_height:], np.asarray(lower.convert("RGB"))[grid_height:])


def test_a_frame_stacked_policy_is_rendered_from_its_newest_frame():
    # The constant policy acts alike on 1 or 3 stacked frames: same key, same game, same screens.
    key = jax.random.PRNGKey(2)
    (single,) = render.record_episodes(
        env_name="freeway", frame_stack=1, q_net=constant_policy("freeway", FREEWAY_UP), key=key, max_steps=12
    )
    (stacked,) = render.record_episodes(
        env_name="freeway", frame_stack=3, q_net=constant_policy("freeway", FREEWAY_UP, frames=3), key=key, max_steps=12
    )
    assert stacked.frames.shape == (12, 10, 10, 7)
    np.testing.assert_array_equal(stacked.frames, single.frames)


def test_a_failed_write_leaves_the_existing_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "episode.gif"
    path.write_bytes(b"the previous GIF")
    frame = np.zeros((10, 10, 4), bool)
    images = [render.render_frame(frame, caption=f"step {t}") for t in range(3)]

    def save_half_then_fail(self, handle, **_):
        handle.write(b"GIF89a half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    with pytest.raises(OSError):
        render.write_gif(path, images, [60, 60, 60])
    assert path.read_bytes() == b"the previous GIF"
    assert os.listdir(tmp_path) == ["episode.gif"]  # no temporary file left behind


def test_a_gif_path_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "folder.gif").mkdir()
    (tmp_path / "file").write_text("")
    bad = {
        tmp_path / "episode.png": "does not end in .gif",
        tmp_path / "missing" / "episode.gif": "does not exist",
        tmp_path / "file" / "episode.gif": "not a directory",
        tmp_path / "folder.gif": "is a directory",
    }
    for path, message in bad.items():
        with pytest.raises(render.RenderError, match=message):
            render.check_gif_path(path)
    existing = tmp_path / "old.gif"
    existing.write_bytes(b"old")
    render.check_gif_path(existing)  # replaced only once the new GIF is complete
    assert existing.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["file", "folder.gif", "old.gif"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    with pytest.raises(render.RenderError, match="not writable"):
        render.check_gif_path(folder / "episode.gif")
