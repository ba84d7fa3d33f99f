#!/bin/bash
# Generated reports in a real browser: a tiny real training run and a tiny 2-run sweep are
# rendered with `moetb report`, opened in headless Debian chromium, and the DOM it built must
# hold the agreed elements (run: curves, one routing heatmap per MoE layer, the metric table;
# sweep: the summary table and the plots); full-page screenshots must not be blank (PNG
# decoded with python3's standard library). Usage: test_reports.sh MOETB SOURCE_DIR SHOT_DIR.
# Exit 77 (skipped) without chromium or without moetb-torch, unless MOETB_REQUIRE_BROWSER=1.
set -euo pipefail
moetb=$1 src=$2 shots=$3
require=${MOETB_REQUIRE_BROWSER:-0}
skip() {
  [ "$require" = 1 ] && { echo "FAILED: $* (MOETB_REQUIRE_BROWSER=1)"; exit 1; }
  echo "skipped: $*"; exit 77
}
fail() { echo "FAILED: $*"; exit 1; }

browser=""
for b in chromium chromium-browser; do command -v "$b" >/dev/null && { browser=$(command -v "$b"); break; }; done
[ -n "$browser" ] || skip "chromium is not installed (apt-get install chromium)"
command -v python3 >/dev/null || skip "python3 is not installed"
have_torch=0
[ -x "$(dirname "$moetb")/moetb-torch" ] && have_torch=1

work=$(mktemp -d /tmp/moetb-browser.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$shots"
cd "$work"

# Runs chromium headless on a file; $1 = what, then chromium's own flags.
chrome() {
  local what=$1; shift
  timeout 120 "$browser" --headless=new --no-sandbox --disable-gpu --no-first-run --user-data-dir="$work/profile" \
    "$@" 2>>"$work/chromium.log" || { tail -n 5 "$work/chromium.log"; fail "chromium failed on the $what"; }
}

# Checks the dumped DOM of a report of KIND (run|sweep) against the agreed hooks.
check_dom() {
  python3 - "$1" "$2" "${3:-0}" <<'PY'
import sys
from html.parser import HTMLParser
path, kind, layers = sys.argv[1], sys.argv[2], int(sys.argv[3])
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []
        self.classes = set((self.attrs.get("class") or "").split())
    def walk(self):
        yield self
        for c in self.children: yield from c.walk()
    def find(self, tag=None, id=None, classes=()):
        return [n for n in self.walk() if (tag is None or n.tag == tag) and (id is None or n.attrs.get("id") == id)
                and set(classes) <= n.classes]

class Tree(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None); self.cur = self.root
    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur); self.cur.children.append(n)
        if tag not in VOID: self.cur = n
    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))
    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag: n = n.parent
        if n is not None and n.parent is not None: self.cur = n.parent

t = Tree(); t.feed(open(path, encoding="utf-8", errors="replace").read())
errors, seen = [], []
def need(cond, what):
    (seen if cond else errors).append(what)
def one(nodes, what):
    need(len(nodes) == 1, f"{what} (found {len(nodes)})")
    return nodes[0] if nodes else Node("#missing", [], None)
def drawn(fig):  # a chart is drawn: inline SVG with shapes, or an image
    svgs = fig.find("svg")
    return any(len([n for n in s.walk() if n.tag in ("path", "rect", "line", "circle", "polyline", "polygon")]) >= 3
               for s in svgs) or bool(fig.find("img"))

main = one(t.root.find("main", id="report"), 'one <main id="report">')
need(main.attrs.get("data-kind") == kind, f'data-kind="{kind}" (found {main.attrs.get("data-kind")!r})')
if kind == "run":
    curves = one(main.find("section", id="curves"), "one section#curves")
    figs = curves.find("figure", classes=("chart", "curve"))
    need(len(figs) >= 1, f"figure.chart.curve in section#curves (found {len(figs)})")
    need(all(drawn(f) for f in figs), "every curve has a drawn SVG")
    routing = one(main.find("section", id="routing"), "one section#routing")
    maps = routing.find("figure", classes=("chart", "heatmap"))
    need(len(maps) == layers, f"one figure.chart.heatmap per MoE layer ({layers}; found {len(maps)})")
    need(all(drawn(f) for f in maps), "every heatmap has a drawn SVG")
    table = one(main.find("table", id="metric-table"), "one table#metric-table")
    rows = [r for r in table.find("tr") if r.find("td")]
    need(len(rows) >= 3, f"table#metric-table has metric rows (found {len(rows)})")
else:
    table = one(main.find("table", id="summary-table"), "one table#summary-table")
    rows = [r for r in table.find("tr") if r.find("td")]
    need(len(rows) >= 2, f"table#summary-table has a row per run group (found {len(rows)}, want >= 2)")
    plots = one(main.find("section", id="plots"), "one section#plots")
    figs = plots.find("figure", classes=("chart", "plot"))
    need(len(figs) >= 1, f"figure.chart.plot in section#plots (found {len(figs)})")
    need(all(drawn(f) for f in figs), "every plot has a drawn SVG")
for s in seen: print(f"  ok: {s}")
for e in errors: print(f"  MISSING: {e}")
sys.exit(1 if errors else 0)
PY
}

# Decodes a PNG (8-bit gray/RGB/RGBA, non-interlaced: what chromium writes) with zlib and the
# PNG filters, and requires a share of non-background pixels and several distinct colours.
check_png() {
  python3 - "$1" <<'PY'
import sys, struct, zlib
from collections import Counter
data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n": sys.exit("  not a PNG")
pos, idat, hdr = 8, b"", None
while pos < len(data):
    n, typ = struct.unpack(">I4s", data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if typ == b"IHDR": hdr = struct.unpack(">IIBBBBB", body)
    elif typ == b"IDAT": idat += body
    elif typ == b"IEND": break
w, h, depth, ctype, _, _, interlace = hdr
channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
if depth != 8 or channels is None or interlace: sys.exit(f"  unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
raw, stride, bpp = zlib.decompress(idat), w * channels, channels
prev, rows, i = bytearray(stride), [], 0
for _ in range(h):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + ((a + b) >> 1)) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
pixels = Counter()
for r in rows[::2]:  # every other row and column is plenty
    for x in range(0, stride, 2 * channels): pixels[r[x:x + min(channels, 3)]] += 1
total = sum(pixels.values()); bg, bg_n = pixels.most_common(1)[0]
share, colours = 1 - bg_n / total, sum(1 for v in pixels.values() if v >= 3)
print(f"  {w}x{h}, {share:.1%} non-background pixels, {colours} distinct colours")
if w < 800 or h < 600: sys.exit("  too small")
if share < 0.02: sys.exit("  blank: under 2% of the pixels differ from the background")
if colours < 8: sys.exit("  blank: fewer than 8 distinct colours")
PY
}

# Renders REPORT (a file) in chromium: DOM check, then the screenshot check.
check_report() {
  local kind=$1 html=$2 layers=${3:-0}
  echo "$kind report: $html"
  chrome "$kind report" --dump-dom "file://$html" > "$work/$kind.dom.html"
  [ -s "$work/$kind.dom.html" ] || fail "chromium dumped an empty DOM for the $kind report"
  check_dom "$work/$kind.dom.html" "$kind" "$layers" || fail "the $kind report lacks expected elements"
  rm -f "$shots/$kind-report.png"
  chrome "$kind report" --screenshot="$shots/$kind-report.png" --window-size=1280,3000 --hide-scrollbars "file://$html" >/dev/null
  [ -s "$shots/$kind-report.png" ] || fail "no screenshot of the $kind report"
  check_png "$shots/$kind-report.png" || fail "the screenshot of the $kind report is blank ($shots/$kind-report.png)"
}

# The data: small, two domains, short sequences.
"$moetb" datagen --out data --domains 2 --vocab-per-domain 16 --seq-len 16 --train-tokens 4096 --val-tokens 512 \
  --doc-len-mean 40 > datagen.log 2>&1 || { cat datagen.log; fail "datagen"; }

# The sweep: two runs (real ones with moetb-torch, else the stand-in trainer), collected.
trainer=() fake="" unchecked=""
if [ $have_torch = 0 ]; then
  trainer=(--moetb "$src/tests/core/fixtures/fake_moetb_train.sh")
  fake="fake.rs = 0.5"
  unchecked="check_train_keys = false"  # [fake] keys are not moetb train's: plan must not check them
fi
cat > spec.toml <<SPEC
[sweep]
name = "browser"
seeds = [1]
$unchecked
[base]
data.dir = "data"
train.steps = 4
train.micro_batch = 4
model.d_model = 16
model.n_heads = 2
moe.n_experts = 4
moe.d_ff = 16
eval.every = 4
eval.sequences = 16
$fake
[[axes]]
router.name = ["topk", "oracle"]
SPEC
"$moetb" sweep plan spec.toml --out sweep > sweep.log 2>&1 || { cat sweep.log; fail "sweep plan"; }
"$moetb" sweep run sweep --jobs 2 -q "${trainer[@]}" >> sweep.log 2>&1 || { cat sweep.log; fail "sweep run"; }
"$moetb" sweep collect sweep >> sweep.log 2>&1 || { cat sweep.log; fail "sweep collect"; }
"$moetb" report sweep --out "$work/sweep.html" > report.log 2>&1 || { cat report.log; fail "moetb report on the sweep"; }
check_report sweep "$work/sweep.html"

[ $have_torch = 1 ] || skip "the run report needs a real training run, and moetb-torch is not beside $moetb (the sweep report passed)"
# The run: a tiny real training run, 2 MoE layers.
"$moetb" train --data data --out run --router topk --steps 4 --set model.d_model=16 --set model.n_heads=2 \
  --set moe.n_experts=4 --set moe.d_ff=16 --set train.micro_batch=4 --set eval.every=2 --set eval.sequences=16 -q \
  > train.log 2>&1 || { cat train.log; fail "moetb train"; }
"$moetb" report run --out "$work/run.html" > report.log 2>&1 || { cat report.log; fail "moetb report on the run"; }
check_report run "$work/run.html" 2

echo "ok: run and sweep reports render in $("$browser" --version 2>/dev/null | head -n 1) with the expected elements; screenshots in $shots"
