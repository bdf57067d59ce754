"""`dvc plots show` / `dvc plots diff` pages that render without a network (issue 27, item 4).

DVC's default page loads vega, vega-lite and vega-embed from a CDN (dvc_render/vega.py:
`SCRIPTS`), so offline it shows nothing. DVC takes an HTML template instead (`dvc config
plots.html_template`): the page around its `{plot_divs}`; a template without `{scripts}` gets
none of DVC's script tags. This module builds such a template with the three libraries inlined
(the versions DVC's page names, newest patch: vega 5, vega-lite 5, vega-embed 6), each from its
npm package via `npm pack`, so every page DVC writes is self-contained: it renders offline,
wherever `-o` puts it, and can be mailed.

    python -m pipeline.infra.offline_plots install   # template + .dvc/config.local (make plots-offline)
    python -m pipeline.infra.offline_plots check dvc_plots/index.html [--png shot.png]

`install` writes `.dvc/offline_plots.html` (git-ignored: 1.5 MB of built JavaScript that the npm
registry serves) and points the repository's local DVC config at it (`.dvc/config.local`,
git-ignored by DVC), so a clone without it keeps DVC's default, online page. `check` opens a page
in headless Chromium with every network request refused and says whether each plot drew
(a canvas or an SVG per plot, and a screenshot that is not blank).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from singanseg.io import write_text

# The majors DVC's own page loads (dvc_render 1.0: vega@5, vega-lite@5, vega-embed@6): the
# specs DVC and .dvc/plots/series.json write are vega-lite 5. Pinned for a reproducible page.
PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
TEMPLATE = Path(".dvc/offline_plots.html")  # relative paths in plots.html_template resolve in .dvc/
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- singanseg offline template (pipeline/infra/offline_plots.py): {versions}, inlined -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


class OfflinePlotsError(RuntimeError):
    """One line saying what is missing and what to do."""


def _library(package: str, version: str, workdir: Path) -> str:
    """`build/<package>.min.js` of the npm package, fetched with `npm pack` (npm's own registry)."""
    npm = shutil.which("npm")
    if npm is None:
        raise OfflinePlotsError("npm not found: install Node.js (its npm fetches vega, vega-lite and vega-embed); "
                                "without it `dvc plots show` loads them from the network")  # fmt: skip
    r = subprocess.run([npm, "pack", f"{package}@{version}", "--silent"], cwd=workdir, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    tgz = workdir / (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode != 0 or not tgz.is_file():
        raise OfflinePlotsError(f"npm pack {package}@{version} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    with tarfile.open(tgz) as tar:
        member = tar.extractfile(f"package/build/{package}.min.js")
        if member is None:
            raise OfflinePlotsError(f"{tgz.name} has no build/{package}.min.js")
        return member.read().decode("utf-8")


def template(libraries: dict[str, str]) -> str:
    """The page with each library in its own inline script (`</script` escaped inside the code)."""
    safe = {name: code.replace("</script", "<\\/script") for name, code in libraries.items()}
    scripts = "\n".join(f"    <script>/* {name} */\n{code}\n    </script>" for name, code in safe.items())
    versions = ", ".join(f"{p} {v}" for p, v in PACKAGES.items())
    return PAGE.format(versions=versions, scripts=scripts)


def build(dest: Path = TEMPLATE) -> Path:
    """Fetch the three packages and write the template atomically."""
    with tempfile.TemporaryDirectory(prefix="offline-plots-") as tmp:
        libraries = {p: _library(p, v, Path(tmp)) for p, v in PACKAGES.items()}
    return write_text(dest, template(libraries))


def install(repo: Path = Path(".")) -> Path:
    """Build the template in `repo` and set `plots.html_template` in its .dvc/config.local."""
    dest = build(repo / TEMPLATE)
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if dvc is None:
        raise OfflinePlotsError("dvc not found beside this Python: run `make venv` first")
    subprocess.run([dvc, "config", "--local", "plots.html_template", TEMPLATE.name], cwd=repo, check=True)
    return dest


# ------------------------------------------------------------------ the check


def browser() -> str | None:
    return next((p for b in BROWSERS if (p := shutil.which(b))), None)


def _chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    exe = browser()
    if exe is None:
        raise OfflinePlotsError(f"no headless Chromium found ({', '.join(BROWSERS)}): e.g. "
                                "`apt-get install chromium-headless-shell`, or open the page in a browser offline")  # fmt: skip
    # every request goes to a closed local port: the page must render from what it holds
    offline = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *offline,
           "--virtual-time-budget=10000", *args, page.resolve().as_uri()]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def non_white_fraction(png: Path) -> float:
    from PIL import Image

    img = Image.open(png).convert("L")
    hist = img.histogram()
    return 1 - sum(hist[245:]) / max(1, img.width * img.height)


def check(page: Path, png: Path | None = None) -> dict:
    """Render `page` offline; return {plots, drawn, non_white} (drawn: plots with a canvas or SVG)."""
    html = Path(page).read_text(encoding="utf-8")
    plots = len(re.findall(r"vegaEmbed\(", html))
    dom = _chromium(Path(page), "--dump-dom").stdout
    drawn = len(re.findall(r"<canvas|<svg[^>]*class=\"marks\"", dom))
    result = {"plots": plots, "drawn": drawn, "non_white": None}
    if png is not None:
        _chromium(Path(page), f"--screenshot={Path(png).resolve()}", "--window-size=1280,2400")
        if Path(png).is_file():
            result["non_white"] = non_white_fraction(Path(png))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.infra.offline_plots", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="build .dvc/offline_plots.html and set it as this repository's DVC template")
    c = sub.add_parser("check", help="render a DVC plots page in headless Chromium without network")
    c.add_argument("page", type=Path)
    c.add_argument("--png", type=Path, help="also save a screenshot here and measure it")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "install":
            dest = install()
            print(f"wrote {dest} ({dest.stat().st_size // 1024} KiB: {', '.join(f'{p} {v}' for p, v in PACKAGES.items())});"
                  f" `dvc plots show` / `plots diff` now render offline (.dvc/config.local: plots.html_template)")  # fmt: skip
            return 0
        r = check(args.page, args.png)
    except OfflinePlotsError as e:
        print(f"offline_plots: {e}", file=sys.stderr)
        return 2
    ok = r["plots"] > 0 and r["drawn"] >= r["plots"] and (r["non_white"] is None or r["non_white"] > 0.01)
    shot = "" if r["non_white"] is None else f", screenshot {args.png} {100 * r['non_white']:.1f} % non-white"
    print(f"{args.page}: {r['drawn']} of {r['plots']} plots drawn offline{shot}: {'OK' if ok else 'NOT RENDERED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
