#!/usr/bin/env bash
# test_compare.sh - the comparison workflow end to end: scripts/compare on the
# built-in task (summary.csv/summary.md columns and rows, curves.png with real
# content, reuse of finished runs, resuming an interrupted comparison, a gamma
# sweep), the statistics against known values, scripts/plot, more attention
# kinds (--attns=std,x,xsa, --gamma-learn, std as the baseline; on a stand-in
# trainer that writes train_gpt's metrics.csv), the ViT table builder (on a
# stand-in trainer that writes train_vit's metrics.csv), the configs, get_data
# offline, and train_gpt's text sampling and prepare_text shards read back by
# train_gpt (these two need the GPT-2 vocabulary: scripts/get_gpt2_vocab;
# without it they are SKIPPED).
set -u
cd "$(dirname "$0")/.."
# the runs here are tiny: one thread each is fastest, and keeps OpenMP from
# spinning when other jobs share the cores (results do not depend on it)
export OMP_NUM_THREADS=1
export PYTHONDONTWRITEBYTECODE=1   # no scripts/__pycache__
BIN=./train_gpt
OUT=tests/out/compare
VOCAB=${GPT2_VOCAB:-data/gpt2}
PY=${PYTHON:-python3}
rm -rf "$OUT"
mkdir -p "$OUT"
passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL test_compare: $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIPPED test_compare: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
has() { case "$1" in *"$2"*) return 0 ;; *) return 1 ;; esac; }

TINY=(--layers=1 --heads=2 --embd=32 --seq=16 --batch=8 --mqar-keys=8 --mqar-pairs=3
      --eval-every=5 --eval-batches=2 --log-every=100 --device=cpu)

# a valid PNG of at least 300x200 pixels with real content: chunks and CRCs
# checked here with the standard library; the pixels decoded with PIL
# (python3-pil, which Debian's python3-matplotlib depends on) or, without it,
# by hand with zlib; they must hold many colours and enough ink
PNG_PY=$PY
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import PIL' 2>/dev/null && PNG_PY=/usr/bin/python3
png_ok() {
    "$PNG_PY" - "$1" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    assert zlib.crc32(kind + body) & 0xffffffff == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], "bad CRC"
    if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
    if kind == b"IDAT": idat += body
    pos += 12 + n
assert kind == b"IEND", "no IEND chunk"
w, h, depth, ctype, _, _, interlace = ihdr
assert w >= 300 and h >= 200, "too small: %dx%d" % (w, h)
assert depth == 8 and ctype in (2, 6) and interlace == 0, "unexpected format %s" % (ihdr,)
try:
    from PIL import Image
    img = Image.open(sys.argv[1]).convert("RGB")
    counts = img.getcolors(maxcolors=1 << 24)
    colours = len(counts)
    ink = sum(c for c, px in counts if px != (255, 255, 255))
    total = float(w * h)
except ImportError:
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    seen, ink = set(), 0
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, w, 2):
            px = bytes(line[x * bpp:x * bpp + 3])
            seen.add(px)
            ink += px != b"\xff\xff\xff"
        prev = line
    colours, total = len(seen), w * h / 2.0
frac = ink / total
assert colours >= 20, "only %d colours" % colours
assert frac > 0.02, "almost blank: %.4f of pixels drawn" % frac
print("%dx%d, %d colours, %.1f%% drawn" % (w, h, colours, 100 * frac))
PY
}

# the check itself rejects a blank image (all white, 400x300, written here)
"$PY" - "$OUT/blank.png" <<'PY'
import struct, sys, zlib
w, h = 400, 300
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)
raw = b"".join(b"\x00" + b"\xff" * (3 * w) for _ in range(h))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
if png_ok "$OUT/blank.png" > /dev/null 2>&1; then bad "the PNG check accepts a blank image"; else ok; fi

# --- statistics against known values -------------------------------------------
stats=$("$PY" - <<'PY' 2>&1
import math, sys
sys.path.insert(0, "scripts")
import attnx_lib as L
bad = []
def near(what, got, want, tol):
    if not abs(got - want) <= tol:
        bad.append("%s = %.9g, expected %.9g" % (what, got, want))
# t quantiles (two-sided 95% and 99% critical values from any t table)
for df, want in ((1, 12.706205), (2, 4.302653), (3, 3.182446), (10, 2.228139), (30, 2.042272), (100, 1.983972)):
    near("t_quantile(0.975, %d)" % df, L.t_quantile(0.975, df), want, 2e-6)
near("t_quantile(0.995, 5)", L.t_quantile(0.995, 5), 4.032143, 2e-6)
near("t_quantile(0.025, 10)", L.t_quantile(0.025, 10), -2.228139, 2e-6)
# two-sided p: closed forms for df 1 (Cauchy) and 2, and table values
near("p(t=2, df=1)", L.t_sf2(2.0, 1), 1 - 2 * math.atan(2.0) / math.pi, 1e-12)
near("p(t=2, df=2)", L.t_sf2(2.0, 2), 1 - 2 / math.sqrt(6), 1e-12)
near("p(t=2, df=10)", L.t_sf2(2.0, 10), 0.07338803, 1e-7)
near("p(t=2.228139, df=10)", L.t_sf2(2.228139, 10), 0.05, 1e-6)
near("t_cdf(0, 7)", L.t_cdf(0.0, 7), 0.5, 1e-15)
near("I_0.3(2, 3)", L.betainc(2, 3, 0.3), 0.3483, 1e-12)   # 1 - 0.7^4 - 4*0.3*0.7^3
# a paired test by hand: d = 0.2, 0.3, 0.05; mean 0.18333, sd 0.125831, t 2.523573 on 2 dof
r = L.paired_test([1.2, 1.4, 1.1], [1.0, 1.1, 1.05])
near("paired diff", r["diff"], 0.55 / 3, 1e-12)
near("paired sd", r["sd"], 0.1258305739, 1e-9)
near("paired p", r["p_value"], 1 - r["t"] / math.sqrt(2 + r["t"] ** 2), 1e-12)
near("paired ci_low", r["ci_low"], 0.55 / 3 - 4.302652730 * 0.1258305739 / math.sqrt(3), 1e-8)
one = L.paired_test([1.0], [0.5])
if one["p_value"] is not None or one["ci_low"] is not None or one["diff"] != 0.5:
    bad.append("one pair: CI and p must be n/a, got %s" % one)
print("\n".join(bad) if bad else "stats ok")
PY
)
check "statistics: $stats" [ "$stats" = "stats ok" ]

# --- compare on the built-in task: 2 seeds, gamma 1 ----------------------------
# a wrapper that counts the trainer's invocations
cat > "$OUT/trainer.sh" <<EOF
#!/bin/sh
echo x >> "$PWD/$OUT/invocations"
exec "$PWD/train_gpt" "\$@"
EOF
chmod +x "$OUT/trainer.sh"
C=$OUT/cmp
scripts/compare --seeds=1,2 --gammas=1 --out="$C" --quiet=1 "$OUT/trainer.sh" "${TINY[@]}" --steps=10 \
    > "$OUT/cmp.log" 2>&1
rc=$?
check "compare exit code $rc" [ "$rc" -eq 0 ]
check "compare ran 4 runs" [ "$(wc -l < "$OUT/invocations")" -eq 4 ]
for r in std-s1 x-g1-s1 std-s2 x-g1-s2; do
    check "run $r finished" grep -q '^10,' "$C/$r/metrics.csv"
done
check "std run is standard attention" grep -q '^attn=std$' "$C/std-s2/config.txt"
check "x run has gamma 1 and seed 2" bash -c "grep -q '^attn=x$' '$C/x-g1-s2/config.txt' && grep -q '^gamma=1$' '$C/x-g1-s2/config.txt' && grep -q '^seed=2$' '$C/x-g1-s2/config.txt'"
check "identical flags otherwise" diff <(grep -vE '^(#|attn=|gamma=|seed=|out=)' "$C/std-s1/config.txt") \
                                       <(grep -vE '^(#|attn=|gamma=|seed=|out=)' "$C/x-g1-s1/config.txt")
check "summary.csv header" [ "$(head -n 1 "$C/summary.csv")" = \
    "kind,setting,attn,gamma,seed,metric,n,mean,std,diff,ci_low,ci_high,p_value,status" ]
for m in final_val_loss best_val_loss final_val_acc best_val_acc final_train_loss; do
    check "summary.csv: std setting row for $m" grep -qE "^setting,std,std,,1;2,$m,2,[0-9.]+,[0-9.e-]+,,,,,done$" "$C/summary.csv"
    check "summary.csv: x-g1 setting row for $m with CI and p" \
        grep -qE "^setting,x-g1,x,1,1;2,$m,2,[0-9.e-]+,[0-9.e-]+,[-0-9.e]+,[-0-9.e]+,[-0-9.e]+,[0-9.e-]+,done$" "$C/summary.csv"
done
check "summary.csv: 20 run rows" [ "$(grep -c '^run,' "$C/summary.csv")" -eq 20 ]
# the setting rows agree with the run rows and with metrics.csv
agree=$("$PY" - "$C" <<'PY' 2>&1
import csv, math, sys
sys.path.insert(0, "scripts")
import attnx_lib as L
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/summary.csv")))
bad = []
m = L.Metrics(d + "/x-g1-s2/metrics.csv")
want = min(r["val_loss"] for r in m.rows if r["val_loss"] is not None)
got = [float(r["mean"]) for r in rows if r["kind"] == "run" and r["setting"] == "x-g1" and r["seed"] == "2" and r["metric"] == "best_val_loss"]
if not got or abs(got[0] - want) > 1e-6 * abs(want): bad.append("best_val_loss of x-g1-s2: %s vs %s" % (got, want))
def runs(setting, metric):
    return {r["seed"]: float(r["mean"]) for r in rows if r["kind"] == "run" and r["setting"] == setting and r["metric"] == metric}
for metric in ("best_val_loss", "final_val_acc"):
    x, s = runs("x-g1", metric), runs("std", metric)
    t = L.paired_test([x[k] for k in sorted(x)], [s[k] for k in sorted(x)])
    row = [r for r in rows if r["kind"] == "setting" and r["setting"] == "x-g1" and r["metric"] == metric][0]
    for key, col in (("diff", "diff"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("p_value", "p_value")):
        if abs(float(row[col]) - t[key]) > 1e-6 * max(1.0, abs(t[key])): bad.append("%s %s: %s vs %s" % (metric, col, row[col], t[key]))
    mean, sd = L.mean_std(list(x.values()))
    if abs(float(row["mean"]) - mean) > 1e-7 or abs(float(row["std"]) - sd) > 1e-7: bad.append("%s mean/std" % metric)
print("\n".join(bad) if bad else "agree")
PY
)
check "summary.csv statistics agree with the runs: $agree" [ "$agree" = "agree" ]
md=$(cat "$C/summary.md")
for col in "| setting" "best val loss" "Δ vs std [95% CI]" "| p " "final val loss" "best val acc" "final val acc" \
           "| run " "final train loss" "| status"; do
    has "$md" "$col" && ok || bad "summary.md lacks the column '$col'"
done
check "summary.md: std row" grep -qE '^\| std +\| 2 +\| [0-9.]+ ± [0-9.]+ ' "$C/summary.md"
check "summary.md: x g=1 row with CI and p" grep -qE '^\| x g=1 +\| 2 +\| [0-9.]+ ± [0-9.]+ +\| [-+][0-9.]+ \[[-+][0-9.]+, [-+][0-9.]+\] +\| [0-9.e-]+ ' "$C/summary.md"
for r in std-s1 x-g1-s1 std-s2 x-g1-s2; do
    check "summary.md: run row $r" grep -qE "^\| $r " "$C/summary.md"
done
check "compare prints the table" grep -qE '^\| x g=1 ' "$OUT/cmp.log"
if png=$(png_ok "$C/curves.png" 2>&1); then ok; echo "curves.png: $png"; else bad "curves.png: $png"; fi
# the runs' layers.csv drawn as disc per layer against step, one panel per run
if png=$(png_ok "$C/layers.png" 2>&1); then ok; echo "layers.png: $png"; else bad "layers.png: $png"; fi

# rerunning reuses the finished runs: the trainer is not started again
cp "$C/summary.csv" "$OUT/summary.first"
sleep 1
touch "$OUT/marker"
scripts/compare --seeds=1,2 --gammas=1 --out="$C" --quiet=1 "$OUT/trainer.sh" "${TINY[@]}" --steps=10 \
    > "$OUT/cmp2.log" 2>&1
check "rerun exit code" [ $? -eq 0 ]
check "rerun starts no trainer" [ "$(wc -l < "$OUT/invocations")" -eq 4 ]
check "rerun says reused 4 times" [ "$(grep -c 'reused' "$OUT/cmp2.log")" -eq 4 ]
check "rerun leaves metrics.csv untouched" [ -z "$(find "$C" -name metrics.csv -newer "$OUT/marker")" ]
check "rerun gives the same summary.csv" cmp -s "$C/summary.csv" "$OUT/summary.first"
# other trainer flags into the same directory are refused
scripts/compare --seeds=1,2 --out="$C" --quiet=1 "$OUT/trainer.sh" "${TINY[@]}" --steps=12 > "$OUT/cmp3.log" 2>&1
check "changed trainer flags: exit 2" [ $? -eq 2 ]
check "changed trainer flags: says so" grep -q 'other trainer arguments' "$OUT/cmp3.log"
# a run cut short without a checkpoint is run again; the others are reused
head -n 5 "$C/x-g1-s2/metrics.csv" > "$OUT/cut.csv" && cp "$OUT/cut.csv" "$C/x-g1-s2/metrics.csv"
printf '6,768,0.0' >> "$C/x-g1-s2/metrics.csv"   # a half-written last line
scripts/compare --seeds=1,2 --out="$C" --quiet=1 "$OUT/trainer.sh" "${TINY[@]}" --steps=10 > "$OUT/cmp4.log" 2>&1
check "incomplete run: exit code" [ $? -eq 0 ]
check "incomplete run: only it is run again" [ "$(wc -l < "$OUT/invocations")" -eq 5 ]
check "incomplete run: with --overwrite=1" grep -q 'x-g1-s2: running again (step 3 of 10).*--overwrite=1' "$OUT/cmp4.log"
check "incomplete run: same result as before" cmp -s "$C/summary.csv" "$OUT/summary.first"

# a failed run (here: exit 3, as train_gpt on a non-finite loss) is reported and left out of the statistics
cat > "$OUT/failer.sh" <<EOF
#!/bin/sh
case "\$*" in *--attn=x*--seed=2*) echo "error: non-finite loss"; exit 3 ;; esac
exec "$PWD/train_gpt" "\$@"
EOF
chmod +x "$OUT/failer.sh"
scripts/compare --seeds=1,2,3 --out="$OUT/fail" --quiet=1 --plot=0 "$OUT/failer.sh" "${TINY[@]}" --steps=10 > "$OUT/fail.log" 2>&1
check "failed run: compare exits 1" [ $? -eq 1 ]
check "failed run: status in summary.md" grep -qE '^\| x-g1-s2 .*\| failed \(exit 3\) +\|$' "$OUT/fail/summary.md"
check "failed run: the setting counts 2 seeds" grep -qE '^setting,x-g1,x,1,1;3,best_val_loss,2,' "$OUT/fail/summary.csv"
check "failed run: the other runs finished" [ "$(grep -c 'done in' "$OUT/fail.log")" -eq 5 ]

# --- an interrupted comparison resumes from the checkpoint ----------------------
R=$OUT/resume
LONG=("${TINY[@]}" --steps=300 --eval-every=50)
scripts/compare --seeds=1 --out="$R" --quiet=1 "$BIN" "${LONG[@]}" > "$OUT/resume1.log" 2>&1 &
cpid=$!
for _ in $(seq 1 200); do
    [ -f "$R/std-s1/metrics.csv" ] && [ "$(wc -l < "$R/std-s1/metrics.csv")" -gt 30 ] && break
    sleep 0.05
done
tpid=$(pgrep -P "$cpid" | head -n 1)
if [ -n "$tpid" ]; then kill -INT "$tpid"; fi
wait "$cpid"; rc=$?
if [ -n "$tpid" ] && [ -f "$R/std-s1/checkpoint.bin" ]; then
    check "interrupted trainer: compare exits 130, got $rc" [ "$rc" -eq 130 ]
    check "interrupted trainer: the run is incomplete" [ "$(tail -n 1 "$R/std-s1/metrics.csv" | cut -d, -f1)" -lt 300 ]
    scripts/compare --seeds=1 --out="$R" --quiet=1 "$BIN" "${LONG[@]}" > "$OUT/resume2.log" 2>&1
    check "resumed comparison: exit code" [ $? -eq 0 ]
    check "resumed comparison: --resume used" grep -q 'std-s1: resuming (step [0-9]* of 300): .*--resume=' "$OUT/resume2.log"
    "$BIN" "${LONG[@]}" --attn=std --seed=1 --out="$OUT/straight" > /dev/null 2>&1
    check "resumed run: same losses as one run straight through" \
        diff <(cut -d, -f1,4,5,6 "$R/std-s1/metrics.csv") <(cut -d, -f1,4,5,6 "$OUT/straight/metrics.csv")
else
    skip "interrupting the trainer (it finished before the signal, or wrote no checkpoint)"
fi

# --- a gamma sweep ---------------------------------------------------------------
S=$OUT/sweep
scripts/compare --seeds=1 --gammas=0.5,1 --out="$S" --quiet=1 "$BIN" "${TINY[@]}" --steps=10 > "$OUT/sweep.log" 2>&1
check "sweep exit code" [ $? -eq 0 ]
check "sweep runs" [ -f "$S/x-g0.5-s1/metrics.csv" -a -f "$S/x-g1-s1/metrics.csv" -a -f "$S/std-s1/metrics.csv" ]
check "sweep: one seed gives n/a" grep -qE '^\| x g=0.5 +\| 1 .*n/a' "$S/summary.md"
if png=$(png_ok "$S/gamma_sweep.png" 2>&1); then ok; else bad "gamma_sweep.png: $png"; fi
check "one gamma: no gamma_sweep.png" [ ! -e "$C/gamma_sweep.png" ]

# --- scripts/plot on its own, and without matplotlib ------------------------------
scripts/plot "$C/std-s1" "$C/std-s2" "$S/x-g1-s1" --out="$OUT/plot_x.png" --x=tokens --band=std > /dev/null 2>&1
check "plot --x=tokens exit code" [ $? -eq 0 ]
if png=$(png_ok "$OUT/plot_x.png" 2>&1); then ok; else bad "plot_x.png: $png"; fi
err=$(scripts/plot "$C" 2>&1); rc=$?
check "plot without --out: exit 2" [ "$rc" -eq 2 ]
mkdir -p "$OUT/nomatplotlib/matplotlib"
echo 'raise ImportError("no matplotlib in this test")' > "$OUT/nomatplotlib/matplotlib/__init__.py"
err=$(PYTHONPATH=$OUT/nomatplotlib ATTNX_PLOT_REEXEC=1 scripts/plot "$C" --out="$OUT/none.png" 2>&1); rc=$?
check "no matplotlib: exit 1" [ "$rc" -eq 1 ]
check "no matplotlib: one line naming python3-matplotlib: $err" \
    bash -c "[ \$(printf '%s\n' \"\$1\" | wc -l) -eq 1 ] && [[ \"\$1\" == *python3-matplotlib* ]]" _ "$err"
rm -f "$C/curves.png"
PYTHONPATH=$OUT/nomatplotlib ATTNX_PLOT_REEXEC=1 scripts/compare --seeds=1,2 --out="$C" --quiet=1 \
    "$OUT/trainer.sh" "${TINY[@]}" --steps=10 > "$OUT/noplot.log" 2>&1
check "no matplotlib: compare still exits 0" [ $? -eq 0 ]
check "no matplotlib: compare notes the skipped plot" grep -q 'plot skipped.*python3-matplotlib' "$OUT/noplot.log"
check "no matplotlib: tables still written" grep -q '^setting,x-g1' "$C/summary.csv"

# --- compare usage errors ----------------------------------------------------------
err=$(scripts/compare --out="$OUT/u" "$BIN" --attn=x 2>&1); rc=$?
check "trainer flag --attn: exit 2" [ "$rc" -eq 2 ]
check "trainer flag --attn: named" bash -c "[[ \"\$1\" == *--attn=x* ]]" _ "$err"
scripts/compare --seeds=1 > /dev/null 2>&1
check "no trainer: exit 2" [ $? -eq 2 ]
scripts/compare --seeds=a "$BIN" > /dev/null 2>&1
check "bad seeds: exit 2" [ $? -eq 2 ]
err=$(scripts/compare --seeds=1 --out="$OUT/bad" "$BIN" --bogus=1 2>&1); rc=$?
check "trainer usage error stops compare with 2" [ "$rc" -eq 2 ]
check "trainer usage error: only one run tried" [ ! -e "$OUT/bad/x-g1-s1" ]

# --- more attention kinds: --attns, --gamma-learn (a stand-in trainer) -------------
# a stand-in for train_gpt that takes --attn=std|x|xsa and --gamma-learn=none|layer|head
# (so these tests do not depend on the trainers having them) and writes train_gpt's
# metrics.csv, layers.csv and config.txt; it refuses --gamma/--gamma-learn on a std
# run. val_loss = 3 + seed/100 + 1/(1+step) + effect, effect = {x: -0.1, xsa: -0.2} *
# gamma * (1 + seed/10), minus 0.01 (layer) or 0.02 (head) for a learned gamma, so
# the differences to std are known: x-g1 -0.12, xsa-g1 -0.24 over seeds 1,2,3.
# FAKE_STOP names a file holding a run's name: that run stops after step 4 with a
# checkpoint and exit 130 (as train_gpt on Ctrl-C), once.
cat > "$OUT/fake_gpt" <<'EOF'
#!/usr/bin/env python3
import os, sys
a = {}
for x in sys.argv[1:]:
    if not x.startswith("--") or "=" not in x:
        print("error: bad argument %s" % x); sys.exit(2)
    k, v = x[2:].split("=", 1); a[k] = v
if os.environ.get("FAKE_LOG"):
    open(os.environ["FAKE_LOG"], "a").write(" ".join(sys.argv[1:]) + "\n")
if "resume" in a:
    run = a["resume"]
    conf = dict(l.strip().split("=", 1) for l in open(run + "/config.txt") if "=" in l and not l.startswith("#"))
    start = int(open(run + "/checkpoint.bin").read())
else:
    conf = {"attn": "std", "gamma": "1", "gamma-learn": "none", "seed": "1", "steps": "10", "out": "", "eval-every": "5"}
    for k, v in a.items():
        if k not in conf and k != "overwrite":
            print("error: unknown flag --%s" % k); sys.exit(2)
        conf[k] = v
    if conf["attn"] not in ("std", "x", "xsa"):
        print("error: --attn=%s: expected std, x or xsa" % conf["attn"]); sys.exit(2)
    if conf["gamma-learn"] not in ("none", "layer", "head"):
        print("error: --gamma-learn=%s: expected none, layer or head" % conf["gamma-learn"]); sys.exit(2)
    if conf["attn"] == "std" and ("gamma" in a or "gamma-learn" in a):
        print("error: a std run got --gamma or --gamma-learn"); sys.exit(2)
    run = conf["out"]
    if os.path.exists(run + "/metrics.csv") and a.get("overwrite") != "1":
        print("error: %s exists (--overwrite=1)" % run); sys.exit(1)
    start = 0
os.makedirs(run, exist_ok=True)
steps, seed, every, gamma = int(conf["steps"]), int(conf["seed"]), int(conf["eval-every"]), float(conf["gamma"])
effect = {"std": 0.0, "x": -0.1, "xsa": -0.2}[conf["attn"]] * gamma * (1 + 0.1 * seed) \
    + (0.0 if conf["attn"] == "std" else {"none": 0.0, "layer": -0.01, "head": -0.02}[conf["gamma-learn"]])
with open(run + "/config.txt", "w") as f:
    f.write("# fake_gpt settings\n" + "".join("%s=%s\n" % kv for kv in conf.items()))
mode = "a" if start else "w"
m, l = open(run + "/metrics.csv", mode), open(run + "/layers.csv", mode)
if not start:
    m.write("step,tokens,lr,train_loss,val_loss,val_acc,grad_norm,step_ms,tokens_per_s\n")
    l.write("step,layer,disc,cos_yv,gamma,out_rms\n")
stop = os.environ.get("FAKE_STOP")
stop_here = stop and os.path.exists(stop) and open(stop).read().strip() == os.path.basename(os.path.normpath(run))
for s in range(start, steps + 1):
    loss = 3.0 + 0.01 * seed + 1.0 / (1 + s) + effect
    ev = s % every == 0 or s == steps
    m.write("%d,%d,0.001,%s,%s,%s,1.0,2.0,60000\n" % (s, 128 * s, "" if s == 0 else "%.6f" % (loss + 0.05),
            "%.6f" % loss if ev else "", "%.6f" % (0.5 - effect) if ev else ""))
    if ev:
        for layer in range(2):
            l.write("%d,%d,%.6f,0.5,%s,0.1\n" % (s, layer, 0.8 - 0.1 * layer - 0.01 * s,
                    "" if conf["attn"] == "std" else conf["gamma"]))
    if stop_here and s == 4:
        m.close(); l.close()
        open(run + "/checkpoint.bin", "w").write("5")
        os.remove(stop)
        print("interrupted at step 4; checkpoint written")
        sys.exit(130)
m.close(); l.close()
print("done: %d steps" % steps)
EOF
chmod +x "$OUT/fake_gpt"
FK=$OUT/fake_gpt
# a three-way comparison: std, x and xsa over 3 seeds
K=$OUT/kinds
FAKE_LOG=$OUT/kinds.calls scripts/compare --attns=std,x,xsa --seeds=1,2,3 --out="$K" --quiet=1 "$FK" --steps=10 \
    > "$OUT/kinds.log" 2>&1
check "three kinds: exit code" [ $? -eq 0 ]
check "three kinds: 9 runs" [ "$(wc -l < "$OUT/kinds.calls")" -eq 9 ]
for r in std-s1 x-g1-s1 xsa-g1-s1 std-s2 x-g1-s2 xsa-g1-s2 std-s3 x-g1-s3 xsa-g1-s3; do
    check "three kinds: run $r finished" grep -q '^10,' "$K/$r/metrics.csv"
done
check "three kinds: xsa run flags" grep -qx -- "--steps=10 --attn=xsa --gamma=1 --seed=2 --out=$K/xsa-g1-s2" "$OUT/kinds.calls"
check "three kinds: std runs get no --gamma" [ "$(grep -- '--attn=std' "$OUT/kinds.calls" | grep -c -- '--gamma')" -eq 0 ]
check "three kinds: summary.csv header unchanged" [ "$(head -n 1 "$K/summary.csv")" = \
    "kind,setting,attn,gamma,seed,metric,n,mean,std,diff,ci_low,ci_high,p_value,status" ]
check "three kinds: std setting row" grep -qE '^setting,std,std,,1;2;3,best_val_loss,3,[0-9.]+,[0-9.e-]+,,,,,done$' "$K/summary.csv"
for st in x-g1,x xsa-g1,xsa; do
    check "three kinds: setting row $st with CI and p" \
        grep -qE "^setting,$st,1,1;2;3,best_val_loss,3,[0-9.]+,[0-9.e-]+,-[0-9.e-]+,-[0-9.e-]+,-[0-9.e-]+,[0-9.e-]+,done$" "$K/summary.csv"
done
check "three kinds: 45 run rows" [ "$(grep -c '^run,' "$K/summary.csv")" -eq 45 ]
# std is the paired baseline of every row: each run's diff is its value minus the
# std run of its seed, each setting's test is paired against std, with the known sizes
base=$("$PY" - "$K" <<'PY' 2>&1
import csv, sys
sys.path.insert(0, "scripts")
import attnx_lib as L
rows = list(csv.DictReader(open(sys.argv[1] + "/summary.csv")))
bad = []
def runs(setting, metric):
    return {r["seed"]: float(r["mean"]) for r in rows if r["kind"] == "run" and r["setting"] == setting and r["metric"] == metric}
for setting, want in (("x-g1", -0.12), ("xsa-g1", -0.24)):
    for metric in ("best_val_loss", "final_val_loss", "final_val_acc"):
        v, s = runs(setting, metric), runs("std", metric)
        for r in rows:
            if r["kind"] == "run" and r["setting"] == setting and r["metric"] == metric:
                if abs(float(r["diff"]) - (v[r["seed"]] - s[r["seed"]])) > 1e-9:
                    bad.append("%s seed %s %s: diff %s" % (setting, r["seed"], metric, r["diff"]))
        t = L.paired_test([v[k] for k in sorted(v)], [s[k] for k in sorted(v)])
        row = [r for r in rows if r["kind"] == "setting" and r["setting"] == setting and r["metric"] == metric][0]
        for key in ("diff", "ci_low", "ci_high", "p_value"):
            if abs(float(row[key]) - t[key]) > 1e-6 * max(1.0, abs(t[key])):
                bad.append("%s %s %s: %s vs %s" % (setting, metric, key, row[key], t[key]))
        sign = -1 if metric.endswith("acc") else 1
        if abs(sign * float(row["diff"]) - want) > 1e-5:
            bad.append("%s %s: diff %s, expected %g" % (setting, metric, row["diff"], sign * want))
std_rows = [r for r in rows if r["setting"] == "std"]
if any(r["diff"] or r["p_value"] for r in std_rows):
    bad.append("std rows have a difference")
if [r["attn"] for r in rows if r["kind"] == "setting" and r["metric"] == "best_val_loss"] != ["std", "x", "xsa"]:
    bad.append("setting order/attn column")
print("\n".join(bad) if bad else "baseline ok")
PY
)
check "three kinds: std is the baseline: $base" [ "$base" = "baseline ok" ]
check "three kinds: summary.md std row first" bash -c "grep -E '^\| (std|x g=1|xsa g=1) ' '$K/summary.md' | head -n 1 | grep -q '^| std '"
check "three kinds: summary.md xsa row with CI and p" grep -qE '^\| xsa g=1 +\| 3 +\| [0-9.]+ ± [0-9.]+ +\| -0\.2400 \[-[0-9.]+, -[0-9.]+\] +\| [0-9.e-]+ ' "$K/summary.md"
check "three kinds: summary.md x row" grep -qE '^\| x g=1 +\| 3 +\| [0-9.]+ ± [0-9.]+ +\| -0\.1200 \[' "$K/summary.md"
check "three kinds: summary.md run row xsa-g1-s3" grep -qE '^\| xsa-g1-s3 +\| xsa +\| 1 +\| 3 ' "$K/summary.md"
if png=$(png_ok "$K/curves.png" 2>&1); then ok; else bad "three kinds: curves.png: $png"; fi
if png=$(png_ok "$K/layers.png" 2>&1); then ok; else bad "three kinds: layers.png: $png"; fi

# an existing std/x comparison is reused when xsa is added: only the xsa runs are started
A=$OUT/addkind
FAKE_LOG=$OUT/addkind.calls scripts/compare --seeds=1,2 --out="$A" --quiet=1 --plot=0 "$FK" --steps=10 > "$OUT/addkind1.log" 2>&1
check "std,x by default: exit code" [ $? -eq 0 ]
check "std,x by default: run names unchanged" [ -f "$A/std-s2/metrics.csv" -a -f "$A/x-g1-s2/metrics.csv" -a ! -e "$A/xsa-g1-s1" ]
FAKE_LOG=$OUT/addkind.calls scripts/compare --seeds=1,2 --attns=std,x,xsa --out="$A" --quiet=1 --plot=0 "$FK" --steps=10 \
    > "$OUT/addkind2.log" 2>&1
check "adding xsa: exit code" [ $? -eq 0 ]
check "adding xsa: std and x reused" [ "$(grep -c 'reused' "$OUT/addkind2.log")" -eq 4 ]
check "adding xsa: only 2 new runs" [ "$(wc -l < "$OUT/addkind.calls")" -eq 6 ]
check "adding xsa: both in the summary" grep -qE '^setting,xsa-g1,xsa,1,1;2,best_val_loss,2,' "$A/summary.csv"

# a learned gamma: std is added (it is not listed) and first; the names carry -learn-head
G=$OUT/learn
echo xsa-g1-learn-head-s2 > "$OUT/stop"
FAKE_STOP=$OUT/stop FAKE_LOG=$OUT/learn.calls scripts/compare --attns=xsa --gamma-learn=head --seeds=1,2 --out="$G" \
    --quiet=1 "$FK" --steps=10 > "$OUT/learn1.log" 2>&1
check "gamma-learn, interrupted: exit 130" [ $? -eq 130 ]
check "gamma-learn: std run first" [ "$(head -n 1 "$OUT/learn.calls")" = "--steps=10 --attn=std --seed=1 --out=$G/std-s1" ]
check "gamma-learn: xsa flags" grep -qx -- "--steps=10 --attn=xsa --gamma=1 --gamma-learn=head --seed=1 --out=$G/xsa-g1-learn-head-s1" "$OUT/learn.calls"
check "gamma-learn: std runs get no --gamma-learn" [ "$(grep -- '--attn=std' "$OUT/learn.calls" | grep -c -- '--gamma')" -eq 0 ]
FAKE_LOG=$OUT/learn.calls scripts/compare --attns=xsa --gamma-learn=head --seeds=1,2 --out="$G" --quiet=1 "$FK" --steps=10 \
    > "$OUT/learn2.log" 2>&1
check "gamma-learn, resumed: exit code" [ $? -eq 0 ]
check "gamma-learn, resumed: the others reused" [ "$(grep -c 'reused' "$OUT/learn2.log")" -eq 3 ]
check "gamma-learn, resumed: --resume used" grep -q "xsa-g1-learn-head-s2: resuming (step 4 of 10): .*--resume=$G/xsa-g1-learn-head-s2" "$OUT/learn2.log"
FAKE_LOG= "$FK" --steps=10 --attn=xsa --gamma=1 --gamma-learn=head --seed=2 --out="$OUT/learn_straight" > /dev/null 2>&1
check "gamma-learn, resumed: same metrics as straight through" cmp -s "$G/xsa-g1-learn-head-s2/metrics.csv" "$OUT/learn_straight/metrics.csv"
check "gamma-learn: setting row" grep -qE '^setting,xsa-g1-learn-head,xsa,1,1;2,best_val_loss,2,[0-9.]+,[0-9.e-]+,-0\.2(5|49999)[0-9]*,' "$G/summary.csv"
check "gamma-learn: summary.md row" grep -qE '^\| xsa g=1 learn=head +\| 2 ' "$G/summary.md"
check "gamma-learn: summary.md says so" grep -q 'Gamma learned per head (--gamma-learn=head)' "$G/summary.md"
check "gamma-learn: summary.md run row" grep -qE '^\| xsa-g1-learn-head-s2 +\| xsa +\| 1 +\| 2 ' "$G/summary.md"
if png=$(png_ok "$G/curves.png" 2>&1); then ok; else bad "gamma-learn: curves.png: $png"; fi

# a gamma sweep over two kinds; and one over xsa alone does not fail the comparison
W=$OUT/kinds_sweep
scripts/compare --attns=x,xsa --gammas=0.5,1 --seeds=1,2 --out="$W" --quiet=1 "$FK" --steps=10 > "$OUT/kinds_sweep.log" 2>&1
check "two-kind sweep: exit code" [ $? -eq 0 ]
check "two-kind sweep: 4 settings" [ "$(grep -c '^setting,[a-z]*-g[0-9.]*,[a-z]*,[0-9.]*,1;2,best_val_loss,2,' "$W/summary.csv")" -eq 4 ]
if png=$(png_ok "$W/gamma_sweep.png" 2>&1); then ok; else bad "two-kind sweep: gamma_sweep.png: $png"; fi
scripts/compare --attns=xsa --gammas=0.5,1 --seeds=1 --out="$OUT/xsa_sweep" --quiet=1 "$FK" --steps=10 > "$OUT/xsa_sweep.log" 2>&1
check "xsa-only sweep: exit code" [ $? -eq 0 ]
check "xsa-only sweep: tables" grep -q '^setting,xsa-g0.5,xsa,0.5,1,' "$OUT/xsa_sweep/summary.csv"
check "xsa-only sweep: gamma_sweep.png written or reported" grep -q 'gamma_sweep.png' "$OUT/xsa_sweep.log"

# usage errors of --attns and --gamma-learn: one line naming the option and value, exit 2, no run
err=$(scripts/compare --attns=std,foo --out="$OUT/u2" "$FK" 2>&1); rc=$?
check "unknown kind: exit 2" [ "$rc" -eq 2 ]
check "unknown kind: one line naming --attns and foo: $err" \
    bash -c "[ \$(printf '%s\n' \"\$1\" | wc -l) -eq 1 ] && [[ \"\$1\" == *--attns* ]] && [[ \"\$1\" == *foo* ]]" _ "$err"
err=$(scripts/compare --gamma-learn=sometimes --out="$OUT/u2" "$FK" 2>&1); rc=$?
check "unknown learn mode: exit 2" [ "$rc" -eq 2 ]
check "unknown learn mode: one line naming it: $err" \
    bash -c "[ \$(printf '%s\n' \"\$1\" | wc -l) -eq 1 ] && [[ \"\$1\" == *--gamma-learn=sometimes* ]]" _ "$err"
err=$(scripts/compare --out="$OUT/u2" "$FK" --gamma-learn=head 2>&1); rc=$?
check "trainer flag --gamma-learn: exit 2, named" bash -c "[ $rc -eq 2 ] && [[ \"\$1\" == *--gamma-learn=head* ]]" _ "$err"
err=$(scripts/compare --out="$OUT/u2" "$FK" --attns=x,xsa 2>&1); rc=$?
check "--attns after TRAINER: exit 2, named" bash -c "[ $rc -eq 2 ] && [[ \"\$1\" == *--attns=x,xsa* ]]" _ "$err"
scripts/compare --attns=std --out="$OUT/u2" "$FK" > /dev/null 2>&1
check "--attns=std alone: exit 2" [ $? -eq 2 ]
check "usage errors: no run started" [ ! -e "$OUT/u2" ]
check "usage text names --attns and --gamma-learn" bash -c "scripts/compare --help | grep -q -- '--attns=LIST' && scripts/compare --help | grep -q -- '--gamma-learn=none|layer|head'"

# --- a train_vit-like trainer (epochs) and the Table 1 builder --------------------
# a stand-in with train_vit's flags and metrics.csv header: accuracy depends on
# attn and seed, so the table's numbers are known
cat > "$OUT/fake_vit" <<'EOF'
#!/usr/bin/env python3
import os, sys
a = dict(x[2:].split("=", 1) for x in sys.argv[1:])
out, epochs, seed = a["out"], int(a.get("epochs", "200")), int(a.get("seed", "1"))
conf = {}
for line in open(a["config"]):
    line = line.split("#")[0].strip()
    if "=" in line: k, v = line.split("=", 1); conf[k] = v
base = 0.80 if conf["dataset"] == "cifar10" else 0.50
acc = base + (0.02 if a.get("attn") == "x" else 0.0) + 0.01 * seed
os.makedirs(out, exist_ok=True)
open(out + "/config.txt", "w").write("".join("%s=%s\n" % kv for kv in {**conf, **a, "epochs": epochs}.items()))
with open(out + "/metrics.csv", "w") as f:
    f.write("epoch,step,lr,train_loss,train_acc,val_loss,val_acc,epoch_s,images_per_s\n")
    for e in range(1, epochs + 1):
        f.write("%d,%d,0.0001,%g,%g,%g,%g,1.5,30000\n" % (e, e * 98, 2.0 / e, acc * e / epochs, 1.5 / e, acc * e / epochs))
EOF
chmod +x "$OUT/fake_vit"
V=$OUT/vit
scripts/reproduce_vit_table --trainer="$OUT/fake_vit" --epochs=3 --out="$V" > "$OUT/vit.log" 2>&1
check "reproduce_vit_table exit code" [ $? -eq 0 ]
check "vit runs: 3 seeds x 2 modes x 2 datasets" [ "$(find "$V" -name metrics.csv | wc -l)" -eq 12 ]
check "vit config passed" grep -q '^randaug=2,14$' "$V/cifar100/x-g1-s3/config.txt"
check "vit curves against epoch" [ -s "$V/cifar10/curves.png" ]
T=$V/table.md
# std: 81, 82, 83 -> 82.00 ± 1.00; x: 84.00 ± 1.00; difference +2.00 exactly
check "table: CIFAR-10 row" grep -qE '^\| ViT-small, CIFAR-10 +\| 82\.00 ± 1\.00 +\| 88\.15 ± 0\.55 +\| 84\.00 ± 1\.00 +\| 89\.41 ± 0\.18 +\| \+2\.00 \[\+2\.00, \+2\.00\], p <0\.0001 +\| 3 +\|$' "$T"
check "table: CIFAR-100 row" grep -qE '^\| ViT-small, CIFAR-100 +\| 52\.00 ± 1\.00 +\| 61\.86 ± 0\.47 +\| 54\.00 ± 1\.00 +\| 64\.00 ± 0\.37 +\|' "$T"
check "table: the epochs" grep -q '3 epochs' "$T"
check "table printed" grep -q 'ViT-small, CIFAR-100' "$OUT/vit.log"
# the table builder alone on synthetic summaries (percent values, one seed, a missing dataset)
mkdir -p "$OUT/syn/cifar10"
cat > "$OUT/syn/cifar10/summary.csv" <<'EOF'
kind,setting,attn,gamma,seed,metric,n,mean,std,diff,ci_low,ci_high,p_value,status
setting,std,std,,1,best_val_acc,1,87.5,,,,,,done
setting,x-g1,x,1,1,best_val_acc,1,89.25,,1.75,,,,done
setting,x-g1,x,1,1,final_val_acc,1,10,,1.75,,,,done
EOF
scripts/reproduce_vit_table --table-only=1 --out="$OUT/syn" > "$OUT/syn.log" 2>&1
check "table-only exit code" [ $? -eq 0 ]
check "table-only: one seed, percent kept, n/a" grep -qE '^\| ViT-small, CIFAR-10 +\| 87\.50 +\| 88\.15 ± 0\.55 +\| 89\.25 +\| 89\.41 ± 0\.18 +\| \+1\.75 \[n/a\], p n/a +\| 1 +\|$' "$OUT/syn/table.md"
check "table-only: missing dataset noted" grep -qE '^\| ViT-small, CIFAR-100 +\| — +\| 61\.86 ± 0\.47 ' "$OUT/syn/table.md"

# --- configs -------------------------------------------------------------------------
"$PY" -c "import struct, random; r = random.Random(5); t = [r.randrange(50257) for _ in range(3000)]; open('$OUT/tok_train.bin', 'wb').write(struct.pack('<256i', 20240520, 1, len(t), *([0] * 253)) + struct.pack('<%dH' % len(t), *t))"
cp "$OUT/tok_train.bin" "$OUT/tok_val.bin"
for c in gpt2_owt gpt_owt_small; do
    "$BIN" --config=configs/$c.conf --steps=1 --layers=1 --heads=2 --embd=32 --seq=16 --batch=2 \
        --grad-accum=1 --eval-batches=1 --save-every=0 --device=cpu --data="$OUT/tok_train.bin" \
        --out="$OUT/conf_$c" > "$OUT/conf_$c.log" 2>&1
    check "configs/$c.conf accepted by train_gpt" [ $? -eq 0 ]
done
check "gpt2_owt.conf values in effect" bash -c "grep -q '^warmup=2000$' '$OUT/conf_gpt2_owt/config.txt' && grep -q '^beta2=0.95$' '$OUT/conf_gpt2_owt/config.txt' && grep -q '^steps=1$' '$OUT/conf_gpt2_owt/config.txt'"
check "gpt_owt_small.conf values in effect" grep -q '^eval-every=250$' "$OUT/conf_gpt_owt_small/config.txt"
# reproduce_gpt_curves with its default config, shrunk, on the tiny token file
scripts/reproduce_gpt_curves --data="$OUT/tok_train.bin" --out="$OUT/gpt_curves" -- --layers=1 --heads=2 \
    --embd=32 --seq=16 --batch=2 --eval-batches=1 --eval-every=2 --device=cpu --steps=6 > "$OUT/gpt_curves.log" 2>&1
check "reproduce_gpt_curves exit code" [ $? -eq 0 ]
check "reproduce_gpt_curves: config used" grep -q '^beta2=0.99$' "$OUT/gpt_curves/x-g1-s1/config.txt"
check "reproduce_gpt_curves: summary table" grep -qE '^\| x g=1 ' "$OUT/gpt_curves.log"
if png=$(png_ok "$OUT/gpt_curves/figure1.png" 2>&1); then ok; else bad "figure1.png: $png"; fi
scripts/reproduce_gpt_curves --data="$OUT/none_train.bin" > /dev/null 2>&1
check "reproduce_gpt_curves without data: exit 1" [ $? -eq 1 ]
if [ -x ./train_vit ]; then
    help=$(./train_vit --help 2>&1)
    for c in configs/vit_small_cifar10.conf configs/vit_small_cifar100.conf; do
        for key in $(sed -e 's/#.*//' -e '/=/!d' -e 's/=.*//' "$c"); do
            has "$help" "--$key=" && ok || bad "$c: key '$key' is not a train_vit flag"
        done
    done
else
    skip "the ViT configs' keys against train_vit --help (no ./train_vit yet)"
fi

# --- get_data --------------------------------------------------------------------
scripts/get_data nonsense > /dev/null 2>&1
check "get_data: unknown dataset exit 2" [ $? -eq 2 ]
# offline: stand-ins for curl and wget that fail as without a network (no download here)
mkdir -p "$OUT/data" "$OUT/offline_bin"
printf '#!/bin/sh\necho "curl: (6) Could not resolve host" >&2\nexit 6\n' > "$OUT/offline_bin/curl"
cp "$OUT/offline_bin/curl" "$OUT/offline_bin/wget"
chmod +x "$OUT/offline_bin/curl" "$OUT/offline_bin/wget"
mkdir -p "$OUT/data/cifar10"
head -c 1000 /dev/zero > "$OUT/data/cifar10/cifar-10-binary.tar.gz.part"
err=$(PATH="$PWD/$OUT/offline_bin:$PATH" scripts/get_data cifar10 "$OUT/data" 2>&1 >/dev/null); rc=$?
check "get_data offline: exit 1" [ "$rc" -eq 1 ]
case "$err" in *"copy it into $OUT/data/cifar10/"*"170052171 bytes"*) ok ;; *) bad "get_data offline message: $err" ;; esac
check "get_data offline: no partial file left" [ ! -e "$OUT/data/cifar10/cifar-10-binary.tar.gz.part" ]

# --- sampling ---------------------------------------------------------------------
SMP=(--layers=1 --heads=2 --embd=32 --seq=16 --batch=4 --eval-every=5 --eval-batches=1 --log-every=100
     --device=cpu --steps=10 --data="$OUT/tok_train.bin")
err=$("$BIN" "${SMP[@]}" --sample-every=5 --out="$OUT/s_bad" 2>&1 >/dev/null); rc=$?
check "--sample-every without a vocabulary: exit 2" [ "$rc" -eq 2 ]
check "--sample-every without a vocabulary: one line" [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]
"$BIN" "${TINY[@]}" --steps=2 --sample-every=1 --tokenizer=x --out="$OUT/s_bad" > /dev/null 2>&1
check "--sample-every on mqar: exit 2" [ $? -eq 2 ]
# an llm.c tokenizer file (decoding only) for a 64-token model: token i is "<i>"
"$PY" -c "
import struct
v = 64
body = b''.join(bytes([len(b'<%d>' % i)]) + b'<%d>' % i for i in range(v))
open('$OUT/tok64.bin', 'wb').write(struct.pack('<256i', 20240328, 2, v, 63, *([0] * 252)) + body)
import random; r = random.Random(7); t = [r.randrange(64) for _ in range(2000)]
open('$OUT/small_train.bin', 'wb').write(struct.pack('<256i', 20240520, 1, len(t), *([0] * 253)) + struct.pack('<%dH' % len(t), *t))"
SM=("${SMP[@]}" --vocab=64 --data="$OUT/small_train.bin" --val-data="$OUT/small_train.bin")
"$BIN" "${SM[@]}" --sample-every=5 --sample-tokens=12 --tokenizer="$OUT/tok64.bin" --out="$OUT/s64a" > "$OUT/s64a.log" 2>&1
check "--tokenizer sampling: exit code" [ $? -eq 0 ]
check "--tokenizer sampling: step 5 and step 10 samples" [ "$(grep -c '^--- sample at step' "$OUT/s64a.log")" -eq 2 ]
check "--tokenizer sampling: 12 decoded tokens" grep -qE '^(<[0-9]+>){12}$' "$OUT/s64a.log"
"$BIN" "${SM[@]}" --out="$OUT/s64b" > /dev/null 2>&1
check "sampling leaves the losses unchanged (tokenizer file)" \
    diff <(cut -d, -f1,4,5,6 "$OUT/s64a/metrics.csv") <(cut -d, -f1,4,5,6 "$OUT/s64b/metrics.csv")
"$BIN" "${SM[@]}" --sample-every=5 --sample-tokens=12 --tokenizer="$OUT/tok64.bin" --out="$OUT/s64c" > "$OUT/s64c.log" 2>&1
check "samples are reproducible" diff <(grep -A1 '^--- sample' "$OUT/s64a.log") <(grep -A1 '^--- sample' "$OUT/s64c.log")
if [ -f "$VOCAB/encoder.json" ] && [ -f "$VOCAB/vocab.bpe" ]; then
    "$BIN" "${SMP[@]}" --sample-every=5 --sample-tokens=16 --vocab-dir="$VOCAB" --out="$OUT/sa" > "$OUT/sa.log" 2>&1
    check "--vocab-dir sampling: exit code" [ $? -eq 0 ]
    check "--vocab-dir sampling: prints text" [ "$(grep -A1 '^--- sample at step 10 (16 tokens) ---' "$OUT/sa.log" | tail -n 1 | wc -c)" -gt 16 ]
    "$BIN" "${SMP[@]}" --out="$OUT/sb" > /dev/null 2>&1
    check "sampling leaves the losses unchanged (GPT-2 vocabulary)" \
        diff <(cut -d, -f1,4,5,6 "$OUT/sa/metrics.csv") <(cut -d, -f1,4,5,6 "$OUT/sb/metrics.csv")

    # prepare_text's shards read back by train_gpt
    mkdir -p "$OUT/text"
    for k in 1 2 3 4 5 6 7 8 9 10; do
        printf 'Document %d. The quick brown fox jumps over the lazy dog, again and again, while the attention\nheads watch closely and compute a consensus of %d values.\n' "$k" "$k" > "$OUT/text/doc$k.txt"
    done
    ./prepare_text --vocab="$VOCAB" --out="$OUT/shards" --val-fraction=0.2 "$OUT"/text/doc*.txt > "$OUT/prep.log" 2>&1
    check "prepare_text exit code" [ $? -eq 0 ]
    "$BIN" --layers=1 --heads=2 --embd=32 --seq=16 --batch=2 --steps=2 --eval-every=1 --eval-batches=1 \
        --device=cpu --data="$OUT/shards/train_*.bin" --out="$OUT/prep_run" > "$OUT/prep_run.log" 2>&1
    check "train_gpt on prepare_text shards: exit code" [ $? -eq 0 ]
    check "train_gpt on prepare_text shards: train and val losses" grep -qE '^2,[0-9]+,[^,]+,[0-9.]+,[0-9.]+,' "$OUT/prep_run/metrics.csv"
else
    skip "sampling with --vocab-dir and prepare_text shards: no GPT-2 vocabulary in $VOCAB (scripts/get_gpt2_vocab)"
fi

if [ "$skipped" -gt 0 ]; then
    echo "test_compare: $passed passed, $failed failed, $skipped skipped"
else
    echo "test_compare: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
