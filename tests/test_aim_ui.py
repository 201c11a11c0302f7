"""`aim up` over a tracked repository shows the runs: rendered by headless Chromium, checked in its DOM.

Set PDQN_AIM_UI_REPO=PATH to check an existing repository instead of a fresh tiny run (every run in
it must appear on the page), e.g. the demo in experiments/demo-tracking.
"""

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aim
import pytest
from conftest import stop_process_group, tiny_config

from pdqn.config import TrackConfig
from pdqn.runner import run
from pdqn.tracking import make_hooks

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ui(url: str, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"aim up exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"aim up did not answer at {url}")


def rendered_dom(browser: str, url: str, profile: Path, budget_ms: int = 20_000) -> str:
    """The DOM after the page's scripts ran (the Aim UI is a single-page app fed by its REST API)."""
    proc = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout


def check_ui_shows_runs(repo: Path, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium); the Aim UI cannot be rendered")
    runs = [aim.Repo.from_path(str(repo)).get_run(h) for h in aim.Repo.from_path(str(repo)).list_all_runs()]
    assert runs, f"no runs in {repo}"
    expected = {r.hash: r.name for r in runs}
    port = free_port()
    aim_cli = Path(sys.executable).with_name("aim")
    log = open(tmp_path / "aim-up.log", "w")
    proc = subprocess.Popen(
        [str(aim_cli), "up", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port), "-y"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "AIM_UI_TELEMETRY_ENABLED": "0"},
        start_new_session=True,
    )
    try:
        wait_for_ui(f"http://127.0.0.1:{port}/", proc)
        dom = ""
        for attempt in range(3):  # the first render may come before the index is read
            dom = rendered_dom(browser, f"http://127.0.0.1:{port}/runs", tmp_path / f"chromium-{attempt}")
            if all(f'href="/runs/{h}"' in dom for h in expected):
                break
        assert "Runs Explorer" in dom, "the Aim UI page did not render"
        for run_hash, name in expected.items():
            assert f'href="/runs/{run_hash}"' in dom, f"run {run_hash} ({name}) is not shown in the Aim UI"
            assert name in dom
        one = next(iter(expected))
        detail = rendered_dom(browser, f"http://127.0.0.1:{port}/runs/{one}", tmp_path / "chromium-run")
        assert "hparams" in detail, "the run page does not show the hparams"
    finally:
        stop_process_group(proc)
        log.close()


def test_aim_ui_shows_tracked_runs(tmp_path):
    if chromium() is None:
        pytest.skip("no Chromium installed (apt-get install chromium); the Aim UI cannot be rendered")
    existing = os.environ.get("PDQN_AIM_UI_REPO")
    if existing:
        repo = Path(existing)
    else:
        repo = tmp_path / "aim"
        config = tiny_config(num_seeds=2, track=TrackConfig(repo=str(repo)))
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        run(config, run_dir, log=io.StringIO(), hooks=make_hooks(config))
    check_ui_shows_runs(repo, tmp_path)
