# Shared set-up for scripts/*.sh (sourced, not run). Creates .venv and installs what a tier needs.
EMS_ROOT="$(pwd)"
EMS_VENV="${EMS_VENV:-$EMS_ROOT/.venv}"
EMS_PY="$EMS_VENV/bin/python"
# torch/torchvision pairs: the CPU-only unit tier uses the CPU build on disk; real ComfyUI
# imports torchvision, whose only PyPI builds are CUDA ones (they run on the CPU too).
EMS_TORCH_UNIT="torch==2.13.0"
EMS_TORCH_COMFY="torch==2.15.0 torchvision==0.29.2"

ems_find_comfyui() {
  if [ -n "${COMFYUI_DIR:-}" ]; then
    [ -f "$COMFYUI_DIR/main.py" ] || { echo "COMFYUI_DIR=$COMFYUI_DIR is not a ComfyUI checkout (no main.py)" >&2; return 1; }
    return 0
  fi
  for d in "$EMS_ROOT/../ComfyUI" "$EMS_ROOT/../comfyui" /work/comfyui "$HOME/ComfyUI"; do
    if [ -f "$d/main.py" ] && [ -d "$d/comfy" ]; then COMFYUI_DIR="$(cd "$d" && pwd)"; export COMFYUI_DIR; return 0; fi
  done
  return 1
}

ems_venv() {
  [ -x "$EMS_PY" ] || python3 -m venv "$EMS_VENV"
  "$EMS_PY" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
}

ems_pip() { "$EMS_PY" -m pip install -q --disable-pip-version-check "$@"; }

ems_install_unit_requirements() {
  "$EMS_PY" -c "import torch" 2>/dev/null || ems_pip $EMS_TORCH_UNIT
  ems_pip -r requirements.txt -r requirements-dev.txt
}

ems_install_comfy_requirements() {
  "$EMS_PY" -c "import torchvision" 2>/dev/null || ems_pip $EMS_TORCH_COMFY
  # ComfyUI's own requirements minus torch/torchvision/torchaudio (pinned above).
  grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$COMFYUI_DIR/requirements.txt" > "$EMS_VENV/comfy-requirements.txt"
  ems_pip -r "$EMS_VENV/comfy-requirements.txt" -r requirements.txt -r requirements-dev.txt
}

# Headless Chromium for the frontend tests (tests/integration/test_frontend.py). Installed from
# Debian when we can (root + apt-get); otherwise those tests are skipped with a loud reason.
ems_install_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing Debian chromium for the frontend tests"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; } >/dev/null 2>&1 \
      || echo "== chromium install failed: frontend tests will be skipped"
  else
    echo "== no chromium (and cannot apt-get install it): frontend tests will be skipped"
  fi
}

# Find ComfyUI, create .venv and install what its tier needs: the real-ComfyUI requirements
# when a checkout is found, else the CPU-only unit requirements. Exports COMFYUI_DIR (or unsets).
ems_prepare() {
  ems_find_comfyui || true
  ems_venv
  if [ -n "${COMFYUI_DIR:-}" ]; then
    echo "== ComfyUI at $COMFYUI_DIR"
    ems_install_comfy_requirements
  else
    echo "== no ComfyUI checkout found (set COMFYUI_DIR): ComfyUI tiers are SKIPPED"
    ems_install_unit_requirements
    unset COMFYUI_DIR
  fi
}
