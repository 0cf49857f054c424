#!/usr/bin/env bash
# Fetch, here (where PyPI is reachable), the wheels that benchmarks/gpu_check.sh installs on a
# bare GPU image (Python 3.12, torch, lightning, torchmetrics and PyG already there; no
# registry): Hydra, omegaconf, antlr4 (built here: PyPI has only its sdist), pyBigWig, captum.
# They go to .whl/, which git ignores through .git/info/exclude; the device call carries it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl .git/info
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl \
  hydra-core==1.3.2 omegaconf==2.3.1 pyBigWig==0.3.29 captum==0.9.0
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls .whl
