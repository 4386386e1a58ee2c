#!/usr/bin/env bash
# Prepare .device/ (git-ignored) for benchmarks/device_check.sh: what the GPU machine's image lacks, for its
# Python 3.12, since nothing can be fetched there. Run here, once per checkout (about 1 min, ~10 MB):
#   bash benchmarks/device_wheels.sh
# - wheels of slem's own needs the image lacks: ase, vesin;
# - DeePTB 2.2.1 for the paired comparison: its package unpacked without its 49 MB of test data (its wheel
#   alone would exceed the 64 MiB the device tool carries), the small wheels it needs, and torch_scatter's
#   source, which the check compiles there against the image's CUDA torch (no wheel exists for it).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.device
rm -rf "$DEST" && mkdir -p "$DEST/wheels" "$DEST/site"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 any; do
  platforms+=(--platform "$p")
done
wheels() {  # wheels() FOLDER SPEC...: binary wheels for the image's CPython 3.12 on x86-64
  local folder=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$folder" "$@"
}
wheels "$DEST/wheels" ase==3.29.0 vesin==0.6.2 dargs==0.4.4 torch-runstats==0.2.0 lmdb==1.5.1 pyfiglet==1.0.2 \
  seekpath==2.2.2 spglib==2.8.0
tmp=$(mktemp -d)
wheels "$tmp" dptb==2.2.1
python3 - "$tmp"/dptb-2.2.1-py3-none-any.whl "$DEST/site" <<'EOF'
import sys
import zipfile

wheel, site = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    # dptb reads its version from its dist-info, so that comes too
    keep = [n for n in z.namelist() if n.startswith(("dptb/", "dptb-")) and not n.startswith("dptb/tests/")]
    z.extractall(site, keep)
EOF
python3 -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$DEST" torch_scatter==2.1.2
rm -rf "$tmp"
du -sh "$DEST"
echo "ready: run(command='bash benchmarks/device_check.sh', carry=['.device'], timeout_s=540)"
