#!/usr/bin/env bash
# Opens a run's page (RUN_DIR/index.html, written by `trainer train` / `trainer eval --run`) in
# headless Chromium, as a user would open it from disk, and checks what the browser made of it:
#   * every <img> decoded (complete, naturalWidth > 0): no broken images;
#   * the sections are there: Summary, Sample grids, Loss curves, Checkpoints, Configuration,
#     and Evaluations with a metrics table when RUN_DIR/evals.json exists;
#   * every link and image is relative (no scheme, no absolute path) and names a file or
#     folder that exists;
#   * a screenshot of the whole page (SCREENSHOT, default RUN_DIR/../<run>-page.png), read
#     back by the browser, is not blank: it has the page header's colour and many colours.
# Exit status 0 when all hold; otherwise a message saying what failed, and status 1.
#
#   tools/check-run-page.sh RUN_DIR [SCREENSHOT]
#
# Needs python3 and Chromium: Debian's `chromium` package is installed (apt-get, as root)
# when no chromium is on PATH, unless CHECK_PAGE_NO_INSTALL=1. CHROMIUM names another binary.
set -euo pipefail

die() { echo "check-run-page: FAILED: $*" >&2; exit 1; }
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 RUN_DIR [SCREENSHOT]" >&2; exit 2; }
run=$(cd "$1" 2>/dev/null && pwd) || die "$1 is not a directory"
page="$run/index.html"
[ -f "$page" ] || die "$page does not exist (trainer train writes it; trainer page --run $1 rebuilds it)"
shot="${2:-$(dirname "$run")/$(basename "$run")-page.png}"
command -v python3 >/dev/null || die "python3 is needed"

browser="${CHROMIUM:-}"
if [ -z "$browser" ]; then
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null; then browser=$b; break; fi
    done
fi
if [ -z "$browser" ]; then
    [ "${CHECK_PAGE_NO_INSTALL:-0}" = 1 ] && die "no chromium on PATH (and CHECK_PAGE_NO_INSTALL=1)"
    [ "$(id -u)" = 0 ] || die "no chromium on PATH; install it (apt-get install chromium) or run as root"
    echo "check-run-page: installing Debian's chromium (about 1.5 min)" >&2
    t0=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; } \
        || die "apt-get install chromium failed"
    echo "check-run-page: chromium installed in $(( $(date +%s) - t0 )) s" >&2
    browser=chromium
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# An own profile, no first-run work, no GPU, no network: the page must need none of it.
flags=(--headless --no-sandbox --disable-gpu --no-first-run --no-default-browser-check
       --user-data-dir="$tmp/profile" --allow-file-access-from-files --hide-scrollbars
       --proxy-server=127.0.0.1:9 --virtual-time-budget=10000)
url="file://$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$page")"
expect_eval=0
[ -f "$run/evals.json" ] && expect_eval=1

# 1. What the browser loaded: the page in an iframe of a checker page outside the run
#    directory (so the run page itself carries no script), which writes its findings into
#    its own DOM for --dump-dom.
cat > "$tmp/check.html" <<EOF
<!DOCTYPE html><html><body>
<iframe id="f" src="$url" style="width:1280px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'result';
  const lines = [];
  try {
    const d = document.getElementById('f').contentDocument;
    for (const i of d.images) {
      if (!(i.complete && i.naturalWidth > 0)) lines.push('BROKEN_IMAGE ' + i.getAttribute('src'));
    }
    lines.push('IMAGES ' + d.images.length);
    const want = ['summary', 'samples', 'curves', 'checkpoints', 'configuration'];
    if ($expect_eval) want.push('evaluations');
    for (const id of want) {
      const h = d.getElementById(id);
      if (!h || !/^H[1-6]$/.test(h.tagName)) lines.push('MISSING_SECTION ' + id);
    }
    if ($expect_eval) {
      const h = d.getElementById('evaluations');
      let n = h, table = false;
      while (n && (n = n.nextElementSibling) && n.tagName !== 'H2') {
        if (n.tagName === 'TABLE' && n.querySelectorAll('tbody tr').length > 0) table = true;
      }
      if (!table) lines.push('MISSING_METRICS_TABLE');
    }
    for (const e of d.querySelectorAll('[href],[src]')) {
      const v = e.getAttribute('href') ?? e.getAttribute('src');
      if (v.startsWith('#')) continue;
      if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(v) || v.startsWith('/')) lines.push('NOT_RELATIVE ' + v);
      else lines.push('LINK ' + v);
    }
    for (const s of d.querySelectorAll('script,link[rel=stylesheet]')) lines.push('EXTERNAL ' + s.outerHTML.slice(0, 80));
    lines.push('HEIGHT ' + Math.max(d.documentElement.scrollHeight, d.body.scrollHeight));
    lines.push('TITLE ' + d.title);
  } catch (e) { lines.push('ERROR ' + e); }
  out.textContent = lines.join('\n');
  document.body.appendChild(out);
});
</script></body></html>
EOF
t0=$(date +%s.%N)
"$browser" "${flags[@]}" --dump-dom "file://$tmp/check.html" > "$tmp/dom.html" 2> "$tmp/browser.log" \
    || die "$browser --dump-dom failed: $(tail -3 "$tmp/browser.log")"

# 2. The verdict on the findings, the links' targets on disk, then a screenshot of the whole
#    page (the window as tall as the page) and whether it shows anything.
python3 - "$tmp/dom.html" "$run" > "$tmp/height" <<'EOF' || exit 1
import html, os, re, sys, urllib.parse
dom, run = open(sys.argv[1], encoding="utf-8").read(), sys.argv[2]
m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
if not m:
    sys.exit("check-run-page: FAILED: the browser did not run the check (no result in its DOM)")
lines = html.unescape(m.group(1)).splitlines()
problems = [l for l in lines if l.split(" ")[0] in
            ("BROKEN_IMAGE", "MISSING_SECTION", "MISSING_METRICS_TABLE", "NOT_RELATIVE", "EXTERNAL", "ERROR")]
links = sorted({l[5:] for l in lines if l.startswith("LINK ")})
for link in links:
    target = os.path.join(run, urllib.parse.unquote(link.split("#")[0]))
    if not os.path.exists(target):
        problems.append("DEAD_LINK " + link)
if problems:
    sys.exit("check-run-page: FAILED: " + "; ".join(problems))
get = lambda key: next((l[len(key) + 1:] for l in lines if l.startswith(key + " ")), "?")
print(get("HEIGHT"))
print(f"check-run-page: {get('TITLE')!r}: {get('IMAGES')} images decoded, {len(links)} relative links "
      "all present, every section there", file=sys.stderr)
EOF
height=$(cat "$tmp/height")
height=$(( height < 600 ? 600 : (height > 16000 ? 16000 : height) ))
mkdir -p "$(dirname "$shot")"
"$browser" "${flags[@]}" --window-size=1280,"$height" --screenshot="$shot" "$url" \
    > /dev/null 2> "$tmp/browser.log" || die "$browser --screenshot failed: $(tail -3 "$tmp/browser.log")"
[ -s "$shot" ] || die "no screenshot was written to $shot"
# The screenshot, decoded by the browser: distinct colours, and the page header's colour
# (#1f3b6e) in its top rows (the inline CSS applied).
shot_abs="$(cd "$(dirname "$shot")" && pwd)/$(basename "$shot")"
shot_url="file://$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$shot_abs")"
cat > "$tmp/shot.html" <<EOF
<!DOCTYPE html><html><body><script>
const done = t => { const o = document.createElement('pre'); o.id = 'result'; o.textContent = t; document.body.appendChild(o); };
const img = new Image();
img.onerror = () => done('UNREADABLE');
img.onload = () => {
  try {
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    let header = 0;
    for (let i = 0; i < c.width * Math.min(40, c.height) * 4; i += 4)
      if (Math.abs(d[i] - 0x1f) < 8 && Math.abs(d[i + 1] - 0x3b) < 8 && Math.abs(d[i + 2] - 0x6e) < 8) header++;
    done('SHOT ' + c.width + ' ' + c.height + ' ' + colours.size + ' ' + header);
  } catch (e) { done('ERROR ' + e); }
};
img.src = '$shot_url';
</script></body></html>
EOF
"$browser" "${flags[@]}" --dump-dom "file://$tmp/shot.html" > "$tmp/shot-dom.html" 2> "$tmp/browser.log" \
    || die "$browser could not read the screenshot: $(tail -3 "$tmp/browser.log")"
read -r what w h colours header < <(sed -n 's/.*<pre id="result">\([^<]*\)<.*/\1/p' "$tmp/shot-dom.html") \
    || die "the browser did not check the screenshot $shot"
[ "$what" = SHOT ] || die "the screenshot $shot could not be read back ($what $w $h)"
if [ "$colours" -lt 64 ] || [ "$header" -lt $(( w * 10 )) ]; then
    die "the screenshot $shot looks blank or unstyled (${w}×${h}, $colours distinct colours, $header header pixels)"
fi
echo "check-run-page: screenshot $shot (${w}×${h}, $colours distinct colours) is not blank" >&2
echo "check-run-page: OK ($run/index.html, $(python3 -c "import time,sys;print(f'{time.time()-float(sys.argv[1]):.1f}')" "$t0") s in the browser checks)"
