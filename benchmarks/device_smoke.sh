#!/usr/bin/env bash
# Every accelerator path once, on the machine this runs on (about 5 minutes on one GPU).
# One line per path: "ok  PATH" or "FAIL PATH: the error line". Run from the repository root:
#   bash benchmarks/device_smoke.sh [cuda|npu]        (default: cuda)
# Prints the device, torch and driver versions first. Nothing here is part of `make test`.
# `cpu` checks the script itself (device stats, fp16 and compile are skipped there: slow
# or absent on a CPU).
set -u
DEV=${1:-cuda}
N2N=${N2N:-.venv/bin/n2n-core}
PY=${PY:-.venv/bin/python}
OUT=$(mktemp -d /tmp/n2n-smoke.XXXXXX)
RES=$OUT/results
PRESET=presets/quickstart.yaml
QUICK="--set train.steps=60 --set train.val_every=30 --set train.snapshot_every=30 --set runtime.sys_every=1"
pass=0; fail=0

step() {  # step NAME COMMAND...
  local name=$1; shift
  local log=$OUT/$(echo "$name" | tr ' /' '__').log
  if "$@" >"$log" 2>&1; then
    echo "ok   $name"; pass=$((pass + 1))
  else
    echo "FAIL $name: $(grep -m1 '^error:' "$log" || tail -n 1 "$log")"; fail=$((fail + 1))
  fi
}

$PY - "$DEV" <<'PY'
import sys, torch
dev = sys.argv[1]
print("torch", torch.__version__, "cuda", torch.version.cuda)
if dev == "cuda" and torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        print(f"cuda:{i}", torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
PY
$N2N devices 2>/dev/null | head -5

run_dir() { ls -d "$RES"/*-"$1" 2>/dev/null | tail -n 1; }

step "fp32 train with sys records" $N2N run $PRESET $QUICK --device "$DEV" --precision fp32 --results-dir "$RES" --name fp32
FP32=$(run_dir fp32)
[ "$DEV" = cpu ] || step "sys records carry the device" $PY -c "import json,sys; r=[json.loads(l) for l in open('$FP32/metrics.jsonl') if '\"sys\"' in l]; d=[x for x in r if any(k.get('devices') for k in x.get('ranks',[]))]; sys.exit(0 if d else 'no device stats in sys records')"
# resume from the mid-run snapshot: drop the final one and resume
step "resume from a mid-run snapshot" bash -c "$N2N run $PRESET $QUICK --device $DEV --precision fp32 --results-dir $RES --name resume --set train.steps=60 & pid=\$!; sleep 1; while [ ! -e \$(ls -d $RES/*-resume 2>/dev/null | tail -n1)/snapshots/snapshot-00000030.safetensors ]; do sleep 0.2; kill -0 \$pid 2>/dev/null || break; done; kill -TERM \$pid; wait \$pid; $N2N resume \$(ls -d $RES/*-resume | tail -n1)"
[ "$DEV" = cpu ] || step "bf16 + torch.compile" $N2N run $PRESET $QUICK --device "$DEV" --precision bf16 --set runtime.compile=true --results-dir "$RES" --name bf16c
[ "$DEV" = cpu ] || step "fp16 + loss scaling" $N2N run $PRESET $QUICK --device "$DEV" --precision fp16 --results-dir "$RES" --name fp16
MRI="--set data.train=builtin:mri-phantoms --set data.val=builtin:mri-phantoms-val --set train.steps=40 --set train.batch=4 --set train.val_every=20 --set train.snapshot_every=0 --set train.log_every=10 --set mri.epochs=4 --set mri.rampup_epochs=1 --set mri.rampdown_epochs=1"
step "MRI task" $N2N run presets/mri-n2n.yaml $MRI --device "$DEV" --results-dir "$RES" --name mri
SNAP=$FP32/snapshots/final.safetensors
VAL=$($PY -c "from n2n_core.data.builtin import skimage_data_dir as d; print(d())")
step "validate on $DEV" $N2N validate --snapshot "$SNAP" --dataset-dir builtin:photos-val --device "$DEV" --json
step "validate on cpu (compare)" $N2N validate --snapshot "$SNAP" --dataset-dir builtin:photos-val --device cpu --json
step "GPU and CPU agree to 0.05 dB" $PY -c "
import json,glob
a=[json.loads(open(f).read().strip().splitlines()[-1]) for f in sorted(glob.glob('$OUT/validate_on_*.log'))]
assert abs(a[0]['psnr']-a[1]['psnr'])<0.05, a"
step "evaluate" $N2N evaluate "$FP32" --dataset-dir builtin:photos-val --device "$DEV" --levels 15,25 --json
IMG=$(ls "$VAL"/*.png | head -n 1)
step "infer with tiles" $N2N infer --snapshot "$SNAP" --image "$IMG" --out "$OUT/tiled.png" --device "$DEV" --tile 128
step "infer, ONNX on the GPU provider" $N2N infer --snapshot "$SNAP" --image "$IMG" --out "$OUT/onnx.png" --device "$DEV" --engine onnx
step "freeze" $N2N freeze --snapshot "$SNAP" --out "$OUT/model.onnx"
step "validate-frozen" $N2N validate-frozen --model "$OUT/model.onnx" --dataset-dir builtin:photos-val --json
GPUS=$($PY -c "import torch; print(torch.cuda.device_count() if '$DEV'=='cuda' else torch.npu.device_count())" 2>/dev/null || echo 0)
if [ "${GPUS:-0}" -ge 2 ]; then
  step "--nproc 2 over NCCL/HCCL" $N2N run $PRESET $QUICK --device "$DEV" --nproc 2 --results-dir "$RES" --name ddp
else
  echo "skip --nproc 2: $GPUS device(s)"
  step "--nproc 2 on one device is one error line" bash -c "! $N2N run $PRESET $QUICK --device $DEV --nproc 2 --results-dir $RES --name two 2>&1 | grep -q Traceback"
fi
echo "$pass ok, $fail failed; logs in $OUT"
[ "$fail" -eq 0 ]
