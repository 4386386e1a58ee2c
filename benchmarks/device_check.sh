#!/usr/bin/env bash
# The GPU checks of issue 17 (item 6) as one run of at most 8 minutes on a lent device machine. Here, first:
#   bash benchmarks/device_wheels.sh        # .device/: the packages the machine's image lacks
# then, through the device tool:
#   run(command="bash benchmarks/device_check.sh", carry=[".device"], timeout_s=540)
# It runs, each stage time-boxed so that a failing one cannot starve the rest:
#   1. the machine: GPU, driver, torch and e3nn versions;
#   2. tests/slem/test_device.py on CUDA: equivariance, outputs against the CPU's, training steps, exact
#      resume after a stop, prediction, and slem train --ddp when there are two GPUs;
#   3. benchmarks/slem_vs_deeptb.py --device cuda, our side alone (training step on Si64, forward at
#      64, 512 and 4096 atoms), so the GPU figures exist even if DeePTB cannot be built there;
#   4. the same, paired with DeePTB 2.2.1 on CUDA, once torch_scatter (compiled in the background from
#      stage 1 on, for the GPU's architecture only) has built.
# Everything goes to $OUT/device_check.log, the tables also to $OUT/*.txt. SLEM_CHECK_DEVICE=cpu runs the
# same stages on the CPU with the 64-atom size only, to check this script on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
DEVICE=${SLEM_CHECK_DEVICE:-cuda}
# the CPU dry run: one size, few steps, one thread (pw.x or tests may share the cores)
if [ "$DEVICE" = cuda ]; then RUN=(--sizes 64,512,4096 --steps 30 --timed-steps 20); else
  RUN=(--sizes 64 --steps 3 --timed-steps 2 --threads 1); fi
START=$(date +%s)
exec > >(tee -a "$OUT/device_check.log") 2>&1
stage() { echo; echo "=== $(($(date +%s) - START)) s: $*"; }
declare -A RESULT

stage "1. machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
SITE=/tmp/slem_device_site
mkdir -p "$SITE"
if compgen -G ".device/wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    .device/wheels/*.whl || echo "installing the carried wheels failed"
  cp -r .device/site/. "$SITE/"
fi
# slem from the working tree (nothing can be installed from an index there), the carried packages after it
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, e3nn; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPUs', \
torch.cuda.device_count(), 'e3nn', e3nn.__version__)"
if ! python3 -c "import slem.model, slem.predict, ase, vesin"; then
  echo "slem cannot be imported here: run bash benchmarks/device_wheels.sh and carry .device"; exit 1
fi
SCATTER=/tmp/slem_device_scatter
if [ "$DEVICE" = cuda ] && [ -f .device/torch_scatter-2.1.2.tar.gz ]; then
  arch=$(python3 -c "import torch; print('.'.join(map(str, torch.cuda.get_device_capability())))")
  echo "building torch_scatter for sm $arch in the background"
  (TORCH_CUDA_ARCH_LIST=$arch FORCE_CUDA=1 MAX_JOBS=$(nproc) python3 -m pip install -q --no-deps \
    --no-build-isolation --no-cache-dir --target "$SCATTER" .device/torch_scatter-2.1.2.tar.gz \
    > "$OUT/torch_scatter_build.log" 2>&1 && touch "$SCATTER.ok") &
fi

stage "2. tests on $DEVICE"
SLEM_TEST_DEVICE=$DEVICE timeout 180 python3 -m pytest -q -rs -p no:cacheprovider tests/slem/test_device.py
RESULT[tests]=$?

stage "3. SLEM on $DEVICE, our side alone"
timeout 150 python3 benchmarks/slem_vs_deeptb.py --device "$DEVICE" --skip-deeptb "${RUN[@]}" \
  | tee "$OUT/slem_$DEVICE.txt"
RESULT[ours]=$?

stage "4. paired with DeePTB 2.2.1 on $DEVICE"
deadline=$((START + 300))
while [ "$DEVICE" = cuda ] && [ ! -f "$SCATTER.ok" ] && [ "$(date +%s)" -lt $deadline ] && jobs -r | grep -q .; do
  sleep 5
done
if [ -f "$SCATTER.ok" ] || [ "$DEVICE" != cuda ]; then
  export PYTHONPATH="$PYTHONPATH:$SCATTER"
  if python3 -c "import dptb, torch_scatter" 2> "$OUT/peer_import.log"; then
    left=$((START + 470 - $(date +%s)))
    timeout $((left > 30 ? left : 30)) python3 benchmarks/slem_vs_deeptb.py --device "$DEVICE" \
      --peer-python python3 "${RUN[@]}" | tee "$OUT/paired_$DEVICE.txt"
    RESULT[paired]=$?
  else
    echo "DeePTB does not import: $(tail -1 "$OUT/peer_import.log")"; RESULT[paired]=skipped
  fi
else
  echo "torch_scatter did not build in time (log: torch_scatter_build.log): no paired comparison"
  tail -5 "$OUT/torch_scatter_build.log" 2>/dev/null
  RESULT[paired]=skipped
fi

stage "summary (exit codes; 124: stage timed out)"
for key in tests ours paired; do echo "$key: ${RESULT[$key]:-not run}"; done
[ "${RESULT[tests]}" = 0 ] && [ "${RESULT[ours]}" = 0 ]
