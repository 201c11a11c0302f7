#!/usr/bin/env bash
# Download, into .whl/ (git-ignored), the wheels the device machine's image lacks for training: it has Python 3.12,
# JAX with CUDA, equinox, optax, jaxtyping, numpy, pyarrow, pillow and matplotlib, and cannot reach a registry.
# polars is pinned to 1.31 because later wheels (polars-runtime-32, 54 MB) leave no room in the device tool's
# 64 MiB carry limit beside the working tree. Aim is not needed: run.sh trains with --track.off.
#   bash experiments/study-gpu/wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .whl && mkdir .whl
python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
  "gymnax>=1.0,<2" gymnasium farama-notifications tyro docstring-parser typeguard "polars==1.31.0"
du -sh .whl
