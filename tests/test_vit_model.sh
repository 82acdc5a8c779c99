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
rm -rf "$dir"   # no file of a mode the test no longer has
mkdir -p "$dir"
"${BUILD:-build}"/test_vit_model --write-inputs "$dir" || exit 1
# every mode the test has (it writes one inputs file per mode)
for in_file in "$dir"/vit_tiny_*.in; do
    /usr/bin/python3 tests/torch_ref_vit.py "$in_file" "${in_file%.in}.ref" || exit 1
done
echo "regenerated references:"
"${BUILD:-build}"/test_vit_model "$dir"
