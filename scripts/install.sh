#!/usr/bin/env bash
# Install everything aiida-slem needs on a fresh Debian/Ubuntu machine; a no-op when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

if ! command -v pw.x >/dev/null || ! command -v pp.x >/dev/null || [ ! -f /usr/share/espresso/pseudo/Si.pbe-rrkj.UPF ]; then
    echo "[install] Quantum ESPRESSO (Debian packages quantum-espresso, quantum-espresso-data)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq quantum-espresso quantum-espresso-data >/dev/null
fi

# Debian's pw.x links the reference BLAS/LAPACK unless an optimised one is installed; the single-threaded
# OpenBLAS takes over through update-alternatives and makes pw.x about 4x faster (docs/projection.md)
if ! dpkg -s libopenblas0-serial >/dev/null 2>&1 && ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
    echo "[install] OpenBLAS (Debian package libopenblas0-serial) for pw.x"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas0-serial >/dev/null
fi

PY=${PYTHON:-python3}
# torch first and pinned: this exact version resolves to the local CPU wheel, anything else pulls GBs of CUDA
if ! $PY -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    echo "[install] torch==2.13.0 (CPU)"
    if ls /opt/wheels/torch-2.13.0*cp311*.whl >/dev/null 2>&1; then
        $PY -m pip install -q /opt/wheels/torch-2.13.0*cp311*.whl
    else
        $PY -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
    fi
fi
echo "[install] aiida-slem and its Python dependencies (editable, with dev tools)"
$PY -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "Running pip as the 'root' user" || true
$PY -c "import slem, aiida_slem.calcjobs, aiida_slem.workflows" && echo "[install] ok: slem and aiida_slem import"
