#!/usr/bin/env bash
# Python environment for benchmarks/*.py: a virtualenv at $CANAO_PYENV
# (default $HOME/.cache/canao/pyenv), never the system Python's site-packages.
#
# Idempotent: creates the venv only if missing and installs only the packages that are
# missing or at another version than pinned below; prints what it does. Re-run freely.
#
#   bash benchmarks/setup-python.sh          # set up / check
#   CANAO_PYENV=/elsewhere bash benchmarks/setup-python.sh
#   source "$HOME/.cache/canao/pyenv/bin/activate"   # then use python3 as usual
#
# About torch: only PyPI is reachable here, so the CPU-only wheels of PyTorch's own index
# are out. PyPI's Linux x86_64 torch wheel is the CUDA build and pulls ~20 nvidia-*/cuda-*
# packages plus triton: about 4 GB of CUDA libraries and 1 GB of triton next to the
# 1.2 GB of torch itself (5.3 GB in the venv in all). It works on a machine without a GPU
# (torch.cuda.is_available() is just False). Measured here: ~1.5 min to download and
# install over PyPI. `pip install --no-deps torch` does NOT work: `import torch` preloads
# the CUDA libraries and fails ("libcublasLt.so.*[0-9] not found"). Older wheels don't
# help either: every torch wheel for Python 3.11 (2.0 onwards) is CUDA-linked the same
# way, and transformers 5 needs torch 2.x. So the full install it is.
#
# The pins are the versions the scripts were tested with (see benchmarks/README.md).
set -euo pipefail

PYENV="${CANAO_PYENV:-$HOME/.cache/canao/pyenv}"
PYTHON="${PYTHON:-python3}"

# name==version; order matters only for readability (one pip call installs all that's missing).
PINS=(
  "numpy==2.4.6"
  "torch==2.15.0"
  "transformers==5.24.0"
  "tokenizers==0.23.3"
  "safetensors==0.8.0"
  "onnx==1.23.2"
  "onnxruntime==1.32.0"
  # onnxruntime.transformers.optimizer imports these beyond onnx/numpy:
  "packaging"
  "sympy"
)

say() { printf '[setup-python] %s\n' "$*"; }

if [[ -x "$PYENV/bin/python" ]]; then
  say "virtualenv exists: $PYENV ($("$PYENV/bin/python" --version 2>&1))"
else
  command -v "$PYTHON" >/dev/null || { say "no $PYTHON on PATH"; exit 1; }
  say "creating virtualenv $PYENV with $("$PYTHON" --version 2>&1)"
  mkdir -p "$(dirname "$PYENV")"
  "$PYTHON" -m venv "$PYENV"
  say "upgrading pip/wheel in the venv"
  "$PYENV/bin/python" -m pip install --quiet --upgrade pip wheel
fi

# Which pins are missing or at another version?
missing=()
for pin in "${PINS[@]}"; do
  name="${pin%%==*}"
  want=""
  [[ "$pin" == *"=="* ]] && want="${pin#*==}"
  have="$("$PYENV/bin/python" - "$name" <<'EOF' 2>/dev/null || true
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
EOF
)"
  if [[ -z "$have" ]]; then
    say "missing: $name${want:+ (want $want)}"
    missing+=("$pin")
  elif [[ -n "$want" && "${have%%+*}" != "$want" ]]; then
    say "wrong version: $name $have (want $want)"
    missing+=("$pin")
  else
    say "ok: $name $have"
  fi
done

if ((${#missing[@]})); then
  say "installing: ${missing[*]}"
  case " ${missing[*]} " in
    *" torch=="*) say "(torch is the CUDA wheel from PyPI: ~5 GB with its nvidia/triton deps; takes a few minutes)" ;;
  esac
  start=$(date +%s)
  "$PYENV/bin/python" -m pip install "${missing[@]}"
  say "pip install took $(($(date +%s) - start)) s"
else
  say "all packages present; nothing to install"
fi

say "smoke test:"
"$PYENV/bin/python" - <<'EOF'
import importlib
for m in ["numpy", "torch", "transformers", "tokenizers", "safetensors", "onnx", "onnxruntime"]:
    mod = importlib.import_module(m)
    print(f"  {m:<13} {getattr(mod, '__version__', '?')}")
import onnxruntime.transformers.optimizer  # noqa: F401  (ORT's BERT fusion tool)
import torch
print(f"  torch threads {torch.get_num_threads()}, cuda available: {torch.cuda.is_available()}")
EOF
say "done: use $PYENV/bin/python (or: source $PYENV/bin/activate)"
