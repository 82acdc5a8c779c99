#!/usr/bin/env bash
# test_vit_model.sh - the ViT against PyTorch autograd: first against the
# committed references (tests/ref/vit_tiny_*.ref), then, where Debian's
# python3-torch is installed, against references regenerated now by
# tests/torch_ref_vit.py, proving that the committed files still agree with
# the script.
set -u
cd "$(dirname "$0")/.."
"${BUILD:-build}"/test_vit_model tests/ref || exit 1
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    echo "SKIPPED: regenerating the torch references (no python3-torch): 0 passed, 0 failed, 1 skipped"
    exit 0
fi
dir=tests/out/torch_vit
mkdir -p "$dir"
"${BUILD:-build}"/test_vit_model --write-inputs "$dir" || exit 1
for mode in small_std small_x plain_x; do
    /usr/bin/python3 tests/torch_ref_vit.py "$dir/vit_tiny_$mode.in" "$dir/vit_tiny_$mode.ref" || exit 1
done
echo "regenerated references:"
"${BUILD:-build}"/test_vit_model "$dir"
