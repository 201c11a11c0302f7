#!/usr/bin/env bash
# Pack, into .whl/site.tar.xz (git-ignored), the Python packages the device machine's image lacks for training: it
# has Python 3.12, JAX with CUDA, equinox, optax, jaxtyping, flax, chex, six, numpy, pyarrow, pillow and matplotlib,
# and cannot reach a registry. The wheels are installed into a folder here and carried as one xz archive (21 MB):
# as wheels (35 MB, polars alone 34 MB) they no longer fit the device tool's 64 MiB carry limit beside the working
# tree (35 MB). polars is pinned to 1.31: later ones add polars-runtime-32 (54 MB). Aim is not needed (--track.off).
#   bash experiments/study-gpu/wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$tmp/wheels" \
  "gymnax>=1.0,<2" gymnasium farama-notifications tyro docstring-parser typeguard "polars==1.31.0"
python -m pip install -q --no-index --no-deps --no-compile --target "$tmp/site" "$tmp"/wheels/*.whl
rm -rf .whl && mkdir .whl
tar -C "$tmp/site" -cf - . | xz -9 -T0 > .whl/site.tar.xz
du -sh .whl/site.tar.xz
