# attnx_lib.py - what scripts/compare, scripts/plot and the reproduce scripts share:
# reading runs (metrics.csv, config.txt), grouping runs into settings, and the
# statistics of a paired comparison (Student's t CDF and quantile).
#
# Python 3 standard library only (3.6 or newer), on purpose: the comparison
# must run on any machine that can run the trainers, with /usr/bin/python3 or
# any other python3, without installing packages. Only the figures need
# matplotlib (scripts/plot).
#
# Statistics (see README "Comparing attention variants"):
# - t distribution CDF through the regularized incomplete beta function:
#   for t >= 0, P(T > t) = I_x(df/2, 1/2) / 2 with x = df / (df + t^2).
#   I_x(a, b) is computed from its continued fraction (modified Lentz's
#   method), after the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where x is
#   beyond the mean a / (a + b) so that the fraction converges fast; the
#   prefactor x^a (1-x)^b / (a B(a, b)) uses math.lgamma.
# - t quantile: the CDF inverted by bisection on a bracket that doubles until
#   it holds the answer, 200 halvings (far below double precision; the CDF is
#   monotone so bisection cannot fail).
# - paired comparison over seeds: d_s = value(setting, s) - value(std, s) for
#   the seeds both have; mean d, sample std sd (n - 1), se = sd / sqrt(n),
#   95% CI mean +- t_{0.975, n-1} se, two-sided p = P(|T_{n-1}| >= |mean/se|).
#   Fewer than 2 pairs: no CI or p ("n/a"). sd = 0: p = 1 when mean = 0, else 0.
import csv
import math
import os
import re

# ----------------------------------------------------------------------------
# statistics


def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        # even step
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        # odd step
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    raise ArithmeticError("incomplete beta: continued fraction did not converge (a=%g b=%g x=%g)" % (a, b, x))


def betainc(a, b, x):
    """Regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError("betainc needs a, b > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df > 0 degrees of freedom."""
    if math.isnan(t):
        return float("nan")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))   # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def t_sf2(t, df):
    """Two-sided tail P(|T| >= |t|)."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p, df):
    """The t with P(T <= t) = p (0 < p < 1), by bisection on t_cdf."""
    if not 0.0 < p < 1.0:
        raise ValueError("t_quantile needs 0 < p < 1")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return float("inf")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return 0.5 * (lo + hi)


def mean_std(values):
    """Mean and sample standard deviation (n - 1); std is None for n < 2."""
    n = len(values)
    if n == 0:
        return None, None
    m = sum(values) / n
    if n < 2:
        return m, None
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var)


def paired_test(a, b, level=0.95):
    """Paired comparison of equal-length lists a (setting) and b (baseline).

    Returns a dict: n, diff (mean of a - b), sd, ci_low, ci_high, t, p_value;
    entries are None where undefined (n < 2)."""
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    out = {"n": n, "diff": None, "sd": None, "ci_low": None, "ci_high": None, "t": None, "p_value": None}
    if n == 0:
        return out
    m, sd = mean_std(d)
    out["diff"] = m
    if n < 2:
        return out
    out["sd"] = sd
    se = sd / math.sqrt(n)
    q = t_quantile(0.5 + level / 2.0, n - 1)
    if se == 0.0:
        out["t"] = 0.0 if m == 0 else math.copysign(float("inf"), m)
        out["p_value"] = 1.0 if m == 0 else 0.0
        out["ci_low"] = out["ci_high"] = m
        return out
    t = m / se
    out["t"] = t
    out["p_value"] = t_sf2(t, n - 1)
    out["ci_low"] = m - q * se
    out["ci_high"] = m + q * se
    return out


# ----------------------------------------------------------------------------
# runs


def read_config(run_dir):
    """config.txt as a dict of strings ({} when absent)."""
    path = os.path.join(run_dir, "config.txt")
    conf = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if "=" in line:
                    k, v = line.split("=", 1)
                    conf[k.strip().lstrip("-")] = v.strip()
    except OSError:
        pass
    return conf


def _num(cell):
    cell = cell.strip()
    if cell == "":
        return None
    try:
        return float(cell)   # "nan" and "inf" parse too
    except ValueError:
        return None


class Metrics(object):
    """A metrics.csv: `columns` (the header) and `rows` (dicts of floats or None).

    Only complete lines count: a last line without its newline (a trainer
    killed while writing) is dropped."""

    def __init__(self, path):
        self.path = path
        with open(path, newline="") as f:
            text = f.read()
        lines = text.split("\n")
        if lines and lines[-1] != "":
            lines = lines[:-1]       # incomplete last line
        lines = [l for l in lines if l.strip()]
        if not lines:
            raise ValueError("%s: empty (no header)" % path)
        reader = csv.reader(lines)
        self.columns = [c.strip() for c in next(reader)]
        self.rows = []
        for cells in reader:
            if len(cells) != len(self.columns):
                continue
            self.rows.append({c: _num(v) for c, v in zip(self.columns, cells)})
        # the progress column: epoch for train_vit, step for train_gpt
        self.x = "epoch" if "epoch" in self.columns else "step"

    def has(self, column):
        return column in self.columns and any(r.get(column) is not None for r in self.rows)

    def series(self, column, x=None):
        """[(x, value)] for the rows where both are present and finite."""
        x = x or self.x
        out = []
        for r in self.rows:
            xv, v = r.get(x), r.get(column)
            if xv is None or v is None or not math.isfinite(v) or not math.isfinite(xv):
                continue
            out.append((xv, v))
        return out

    def last(self, column):
        for r in reversed(self.rows):
            v = r.get(column)
            if v is not None:
                return v
        return None

    def best(self, column, lower=True):
        vals = [r[column] for r in self.rows if r.get(column) is not None and math.isfinite(r[column])]
        if not vals:
            return None
        return min(vals) if lower else max(vals)

    def last_x(self):
        for r in reversed(self.rows):
            if r.get(self.x) is not None:
                return r[self.x]
        return None


def run_target(run_dir, metrics=None):
    """(progress column, the final value configured in config.txt) or (col, None)."""
    conf = read_config(run_dir)
    col = metrics.x if metrics is not None else None
    if col is None:
        col = "epoch" if "epochs" in conf and "steps" not in conf else "step"
    key = "epochs" if col == "epoch" else "steps"
    try:
        return col, int(float(conf[key]))
    except (KeyError, ValueError):
        return col, None


def run_status(run_dir):
    """'done', 'partial' or 'absent', and a short reason.

    A run is done when its metrics.csv's last complete row has reached the
    final step (train_gpt: config.txt's steps) or epoch (train_vit: epochs)."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.exists(path):
        return "absent", "no metrics.csv"
    try:
        m = Metrics(path)
    except (OSError, ValueError) as e:
        return "partial", str(e)
    col, target = run_target(run_dir, m)
    if target is None:
        return "partial", "config.txt missing or without %ss" % col
    last = m.last_x()
    if last is not None and int(last) >= target:
        return "done", "%s %d of %d" % (col, int(last), target)
    return "partial", "%s %s of %d" % (col, "none" if last is None else int(last), target)


SEED_SUFFIX = re.compile(r"-s(\d+)$")


def setting_of(run_dir):
    """(setting key, seed) from a run directory name: '.../x-g1-s3' -> ('.../x-g1', 3)."""
    path = os.path.normpath(run_dir)
    base = os.path.basename(path)
    m = SEED_SUFFIX.search(base)
    if not m:
        return path, None
    return os.path.join(os.path.dirname(path), base[:m.start()]), int(m.group(1))


def find_runs(paths):
    """Run directories (holding metrics.csv) from paths that are runs or hold runs."""
    runs = []
    for p in paths:
        if os.path.isfile(os.path.join(p, "metrics.csv")):
            runs.append(p)
        elif os.path.isfile(p) and os.path.basename(p) == "metrics.csv":
            runs.append(os.path.dirname(p) or ".")
        elif os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                sub = os.path.join(p, name)
                if os.path.isfile(os.path.join(sub, "metrics.csv")):
                    runs.append(sub)
    return runs


def group_runs(run_dirs):
    """An ordered list of (label, [run dirs]) for the settings; std first."""
    groups = {}
    order = []
    for r in run_dirs:
        key, _ = setting_of(r)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    bases = [os.path.basename(k) for k in order]
    labels = {}
    for k in order:
        b = os.path.basename(k)
        labels[k] = b if bases.count(b) == 1 else os.path.join(os.path.basename(os.path.dirname(k)), b)
    order.sort(key=lambda k: (0 if os.path.basename(k).startswith("std") else 1, setting_sort_key(os.path.basename(k))))
    return [(labels[k], groups[k]) for k in order]


# a setting name as scripts/compare writes it: <kind>-g<gamma>[-learn-<mode>]
SETTING_NAME = re.compile(r"^(.*?)-g([-+0-9.eE]+)(?:-learn-(\w+))?$")


def setting_sort_key(name):
    m = SETTING_NAME.match(name)
    if m:
        try:
            return (m.group(1), float(m.group(2)), m.group(3) or "", name)
        except ValueError:
            pass
    return (name, 0.0, "", name)


def setting_label(name):
    """'x-g0.5' -> 'x g=0.5' (AttentionX), 'xsa-g1-learn-head' -> 'xsa g=1 learn=head', 'std' -> 'std'."""
    m = SETTING_NAME.match(name)
    if m:
        return "%s g=%s%s" % (m.group(1), m.group(2), " learn=" + m.group(3) if m.group(3) else "")
    return name


# ----------------------------------------------------------------------------
# formatting


def fmt(v, digits=4):
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return "%.*f" % (digits, v)


def fmt_signed(v, digits=4):
    if v is None:
        return "n/a"
    return "%+.*f" % (digits, v)


def fmt_p(p):
    if p is None:
        return "n/a"
    if p < 1e-4:
        return "<0.0001"
    return "%.4f" % p


def script_help(path):
    """The comment block at the top of a script, without the '# ' prefixes."""
    out = []
    for line in open(path).read().splitlines()[1:]:
        if not line.startswith("#"):
            break
        out.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(out)


def markdown_table(header, rows):
    widths = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    def line(cells):
        return "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
