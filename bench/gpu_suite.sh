#!/usr/bin/env bash
# Issue 17's GPU run, prepared: see bench/GPU.md. One script for here and for the device machine.
#
#   here (CPU), once per session:  bash bench/gpu_suite.sh stage     # out/gpu_a (GGUF part 1), out/gpu_b (the rest)
#   here (CPU), the code path:     bash bench/gpu_suite.sh dry-run   # about a minute, tiny model
#   device call 1:                 bash bench/gpu_suite.sh park      # carry ["out/gpu_a"]; parks GGUF part 1
#   device call 2, AT ONCE:        bash bench/gpu_suite.sh run       # carry ["out/gpu_b"]; the whole suite
#
# Two device calls because one call carries at most 64 MiB with the working tree, and the SmolLM2 GGUF alone is
# 94 MiB: call 1 leaves its first part in /tmp on the machine, call 2 must follow while the machine is still
# warm (about 30 s). If it is not, sections 1 and 2 still run and section 3 says why it was skipped.
# Extra arguments go to bench/gpu_suite.py (e.g. run --sections finetune, run --budget-s 300).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
cmd=${1:-run}
shift || true
PYTHON=${PYTHON:-python3}

case "$cmd" in
  stage)
    exec uv run --frozen --all-extras python bench/gpu_suite.py --stage "$@" ;;
  dry-run)
    exec uv run --frozen --all-extras python bench/gpu_suite.py --dry-run "$@" ;;
  park)
    mkdir -p /tmp/gpu_suite_park && cp out/gpu_a/* /tmp/gpu_suite_park/ || { echo "park: out/gpu_a missing (carry it)"; exit 1; }
    ls -l /tmp/gpu_suite_park
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, torch.cuda.get_device_name(0))'
    ;;
  run)
    export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    if [ -d out/gpu_b/wheels ] && [ -z "${GPU_SUITE_NO_WHEELS:-}" ]; then
      site=/tmp/gpu_suite_site
      mkdir -p "$site"
      for w in out/gpu_b/wheels/*.whl; do "$PYTHON" -m zipfile -e "$w" "$site" || exit 1; done
      export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    data=()
    [ -d out/gpu_b/data ] && data=(--data out/gpu_b/data)
    exec "$PYTHON" bench/gpu_suite.py --out "${OUT:-out/gpu_suite}" "${data[@]}" "$@" ;;
  *)
    echo "usage: bash bench/gpu_suite.sh stage|dry-run|park|run [gpu_suite.py arguments]" >&2
    exit 2 ;;
esac
