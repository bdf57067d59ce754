"""Issue 27: README lines without activation, per-run report folders, make test ARGS."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.report.build import header, report_folder

ROOT = Path(__file__).resolve().parent.parent


def clean_env() -> dict:
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")} | {"PATH": path}


def test_report_folder_per_run():
    assert report_folder("smoke", "phantom", None) == "smoke"
    assert report_folder("cpu", "folder", "../shared/data/kvasir-seg-200") == "cpu"
    assert report_folder("smoke", "folder", "/data/my pairs") == "smoke-folder-my-pairs"
    assert report_folder("cpu", "kvasir-seg", None) == "cpu-kvasir-seg"


def test_folder_header_never_says_phantom():
    text = header("smoke", "abc", {}, "folder /d/mine", data=("folder", "/d/mine", 8))
    assert "phantom" not in text.lower()
    assert "`/d/mine`" in text and "8 pairs" in text


def test_wrong_interpreter_fails_in_one_line(tmp_path):
    (tmp_path / "pipeline").mkdir()
    shutil.copy(ROOT / "pipeline" / "__init__.py", tmp_path / "pipeline")
    (tmp_path / "pipeline" / "x.py").write_text("print('ran')\n")
    # -S: no site-packages, so the suite's dependencies are missing; no .venv beside this copy
    r = subprocess.run([sys.executable, "-S", "-m", "pipeline.x"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "ran" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "lacks the suite's dependencies" in lines[0] and "pipeline.x" in lines[0]


def test_stage_under_dvc_reruns_with_dvcs_venv_python(tmp_path):
    """A stage that DVC starts with a `python` lacking the dependencies re-runs itself with the
    interpreter of `.venv/bin/dvc` (its shebang's venv python), even though that python is a
    symlink to a base interpreter without the venv's packages (/proc/<pid>/exe names the base)."""
    import venv

    bare = tmp_path / "bare"  # the `python` on PATH: no site-packages of the suite's
    venv.create(bare, with_pip=False, symlinks=True)
    proj = tmp_path / "proj"
    (proj / "pipeline").mkdir(parents=True)
    shutil.copy(ROOT / "pipeline" / "__init__.py", proj / "pipeline")
    (proj / "pipeline" / "x.py").write_text("import sys, natsort\nprint('ran', sys.prefix)\n")
    dvc = tmp_path / "bin" / "dvc"  # what pip writes: a script whose shebang is the venv's python
    dvc.parent.mkdir()
    dvc.write_text(f"#!{sys.executable}\nimport subprocess, sys\n"
                   "sys.exit(subprocess.call('python -m pipeline.x', shell=True))\n")  # fmt: skip
    dvc.chmod(0o755)
    env = {k: v for k, v in clean_env().items() if k != "SINGANSEG_INTERPRETER_GUARD"}
    env["PATH"] = f"{bare / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"
    r = subprocess.run([str(dvc)], cwd=proj, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ran", sys.prefix], r.stdout

def test_readme_cheap_lines_in_clean_shell():
    for cmd in (".venv/bin/python -m pipeline.data.feasibility", "python -m pipeline.data.feasibility",
                ".venv/bin/singanseg --help", ".venv/bin/python -m pipeline.plan --profile paper"):
        r = subprocess.run(cmd, shell=True, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])


def test_make_test_passes_args():
    r = subprocess.run(["make", "-n", "test", "ARGS=-k foo --durations=15"], cwd=ROOT, capture_output=True, text=True)
    assert '-m "not long" -k foo --durations=15' in r.stdout


# ------------------------------------------------------------------ item 3: `dvc exp show` in 120 columns


def _readme_block_lines(marker: str) -> list[str]:
    """The bash lines of the README's code block that contains `marker`, comments cut."""
    import re

    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        if marker in block:
            return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    raise AssertionError(f"README.md has no bash block with {marker!r}")


def _declared_headline(dvc_yaml: dict) -> tuple[list[str], list[str]]:
    """The metrics files dvc.yaml declares, and the uncached JSON outs beside them (foreach resolved)."""
    metrics, outs = [], []
    for stage in dvc_yaml["stages"].values():
        body = stage.get("do", stage)
        for item in stage.get("foreach") or [None]:
            for kind, dest in (("metrics", metrics), ("outs", outs)):
                for entry in body.get(kind, []):
                    path = (next(iter(entry)) if isinstance(entry, dict) else entry).replace("${item}", str(item))
                    if kind == "metrics" or (path.startswith("metrics/headline/") and path.endswith(".json")):
                        dest.append(path)
    return metrics, outs


FAKE_STAGE = """\
import json, sys, zlib
from pathlib import Path
import yaml
p = yaml.safe_load(open("params.yaml"))
f = 1 + zlib.crc32(json.dumps([p["profile"], p["data"], p["generate"]]).encode()) % 1000 / 3000
def scale(d): return {k: scale(v) for k, v in d.items()} if isinstance(d, dict) else d * f
for out in sys.argv[1:]:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(scale(json.load(open("committed/" + Path(out).name)))))
"""


@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory):
    """The README's sweep in a toy DVC project whose stages declare the real dvc.yaml's headline
    metrics and full JSONs (values: the committed metrics/headline/, scaled per experiment):
    (repo, README's "Comparing runs" lines, sh) with sh running a line as written there."""
    import yaml

    bin_dir = Path(sys.executable).parent
    metrics, outs = _declared_headline(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    assert metrics and all(Path(m).name.startswith("brief_") for m in metrics), metrics
    repo = tmp_path_factory.mktemp("sweep") / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "params.yaml", repo)
    shutil.copytree(ROOT / "metrics/headline", repo / "committed")
    (repo / "fake_stage.py").write_text(FAKE_STAGE)
    (repo / ".venv").symlink_to(bin_dir.parent)  # the README's `.venv/bin/dvc`
    (repo / ".gitignore").write_text(".venv\n")
    swept = ["profile", "data.source", "data.folder", "generate.num_samples"]
    # a generating stage whose outputs (named like the real ones, with and without a slash) are
    # the metrics stages' deps: their hashes differ per experiment, as in a real sweep
    gen = ("import yaml, pathlib; p = yaml.safe_load(open('params.yaml')); "
           "[(pathlib.Path(d).mkdir(parents=True, exist_ok=True), (pathlib.Path(d) / 'n.txt').write_text(repr(p['generate'])))"
           " for d in ('synthetic', 'models/singan/shard0')]")  # fmt: skip
    stages = {"gen": {"cmd": f'{sys.executable} -c "{gen}"', "params": swept,
                      "outs": [{"synthetic": {"cache": False}}, {"models/singan/shard0": {"cache": False}}]}}  # fmt: skip
    for i, m in enumerate(metrics):  # one toy stage per metrics file, with the full JSON it sits beside
        full = [o for o in outs if o == m.replace("brief_", "")]
        stages[f"s{i}"] = {"cmd": f"{sys.executable} fake_stage.py {m} {' '.join(full)}", "params": swept,
                           "deps": ["synthetic", "models/singan/shard0"], "metrics": [{m: {"cache": False}}], "outs": [{o: {"cache": False}} for o in full]}  # fmt: skip
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "120", "PYTHONPATH": str(ROOT),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip

    def sh(cmd: str) -> str:
        r = subprocess.run(cmd, shell=True, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:])
        return r.stdout

    sh("git init -q && dvc init -q && dvc repro -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base")
    lines = _readme_block_lines("dvc exp show")
    for line in lines:
        if " exp run " in line:
            sh(line.replace("data.folder=DIR", "data.folder=../shared/data/kvasir-seg-200"))
    return repo, lines, sh, metrics


@pytest.mark.slow
def test_readme_exp_show_fits_120_columns_with_values(toy_sweep):
    """The README's `dvc exp show` line as written (plus --no-pager) in a 120-column terminal."""
    repo, lines, sh, metrics = toy_sweep
    [show] = [line for line in lines if " exp show" in line]
    out = sh(show + " --no-pager")
    rows = out.rstrip("\n").splitlines()
    assert max(len(r) for r in rows) <= 120, "\n" + out
    assert "…" not in out, "\n" + out
    header = rows[1].split()
    brief = {f"{top}.{k}" if isinstance(v, dict) else top: v for m in metrics
             for top, v in json.loads((ROOT / m).read_text()).items() for k in (v if isinstance(v, dict) else [None])}  # fmt: skip
    assert set(brief) <= set(header), (sorted(brief), header)
    assert "generate.num_samples" in header  # the swept value
    body = [r.split() for r in rows[3:-1]]
    assert len(body) == 4 and all(len(r) >= len(brief) for r in body)  # workspace, baseline, 2 experiments
    # the full numbers stay comparable: the README's `metrics diff --targets` line reads them
    [full_diff] = [line for line in lines if "metrics diff" in line and "--targets" in line]
    diff = sh(full_diff)
    assert "iou.paper.REAL" in diff and "fid.singan_gss0" in diff, diff


@pytest.mark.slow
def test_compare_prints_every_headline_number_side_by_side(toy_sweep):
    repo, lines, sh, metrics = toy_sweep
    out = sh(f"{sys.executable} -m pipeline.infra.compare")
    assert max(len(r) for r in out.splitlines()) <= 120, "\n" + out
    params, table = out.split("\n\n", 1)  # the params that differ, then one block of numbers
    labels = [line.split()[0] for line in params.splitlines()]
    assert len(labels) == 4 and {"workspace", "samples3", "samples5"} < set(labels), params
    assert "generate.num_samples=3" in params and "data.folder=../shared/data/kvasir-seg-200" in params
    rows = table.rstrip("\n").splitlines()
    assert rows[0].split() == labels and "\n\n" not in table, "\n" + out
    by_name = {r.split()[0]: r.split()[1:] for r in rows[1:]}
    assert {"iou.paper.REAL", "dice.clean.REAL", "fid.singan_gss0", "kid.fastgan_n2_k2"} <= set(by_name)
    assert all(len(v) == len(labels) for v in by_name.values())
    full_a = json.loads((ROOT / "metrics/headline/segment_A.json").read_text())
    baseline = labels.index(next(lab for lab in labels if lab not in ("workspace", "samples3", "samples5")))
    want = full_a["iou"]["paper"]["REAL"] * _scale_of(repo)
    assert float(by_name["iou.paper.REAL"][baseline]) == pytest.approx(want, rel=1e-3)
    two = sh(f"{sys.executable} -m pipeline.infra.compare samples3 samples5 --width 60")
    blocks = two.split("\n\n")
    assert [line.split()[0] for line in blocks[0].splitlines()] == ["samples5", "samples3"]
    assert all(len(r) <= 60 for block in blocks[1:] for r in block.splitlines()), two
    r = subprocess.run([sys.executable, "-m", "pipeline.infra.compare", "nosuch"], cwd=repo, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no experiment nosuch" in r.stderr, r.stderr


def _scale_of(repo: Path) -> float:
    """The factor fake_stage.py applied at the baseline (its params.yaml at HEAD)."""
    import zlib

    import yaml

    head = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=repo, capture_output=True, text=True, check=True).stdout
    p = yaml.safe_load(head)
    return 1 + zlib.crc32(json.dumps([p["profile"], p["data"], p["generate"]]).encode()) % 1000 / 3000


# ------------------------------------------------------------------ item 5: the e2e fixture's failure


def test_pipeline_timeout_names_the_stage_and_last_line(tmp_path):
    import time

    from helpers import run_pipeline

    # what `dvc repro` prints, then a stage process (a grandchild) that outlives the timeout
    script = ("echo \"Running stage 'data':\"; echo ok; echo \"Running stage 'segment@A':\"; "
              "echo 'segment A: 3/6 runs, ETA 40 s' >&2; sh -c 'sleep 60' & wait")  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as err:
        run_pipeline(["sh", "-c", script], tmp_path, dict(os.environ), 2, tmp_path / "log")
    first = str(err.value).splitlines()[0]
    assert time.monotonic() - t0 < 30  # the whole process group was killed, the sleep included
    assert "timed out after 2 s in stage segment@A" in first
    assert first.endswith("last log line: segment A: 3/6 runs, ETA 40 s")
    with pytest.raises(AssertionError, match=r"failed \(exit 3\) in stage data; last log line: boom"):
        run_pipeline(["sh", "-c", "echo \"Running stage 'data':\"; echo boom >&2; exit 3"], tmp_path, dict(os.environ), 60,
                     tmp_path / "log2")  # fmt: skip
    assert run_pipeline(["sh", "-c", "echo fine"], tmp_path, dict(os.environ), 60, tmp_path / "log3") == "fine\n"


# ------------------------------------------------------------------ item 4: plots offline


def test_offline_template_inlines_the_libraries_and_drops_dvc_cdn_scripts(tmp_path):
    from dvc_render.html import render_html
    from dvc_render.vega import VegaRenderer

    from pipeline.infra import offline_plots

    page = offline_plots.template({"vega": "var v = '</script>';", "vega-lite": "/*vl*/", "vega-embed": "/*ve*/"})
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC adds no <script src> of its own
    assert "<\\/script>" in page and "'</script>'" not in page  # the code cannot close its tag
    (tmp_path / "t.html").write_text(page)
    spec = {"data": {"values": [{"x": 1, "y": 2}]}, "mark": "point"}
    out = render_html([VegaRenderer([{"content": spec, "props": {}}], "p")], tmp_path / "index.html", tmp_path / "t.html")
    html = Path(out).read_text()
    assert "cdn.jsdelivr.net" in VegaRenderer.SCRIPTS and "cdn." not in html and "<script src" not in html
    assert html.index("/*ve*/") < html.index("vegaEmbed(")


@pytest.mark.slow
def test_dvc_plots_show_renders_offline_in_headless_chromium(repo_root, tmp_path):
    """The documented check (make plots-offline, make plots-check) on the committed headline files:
    every plot draws with network refused, and DVC's default (CDN) page does not."""
    from pipeline.infra import offline_plots

    if offline_plots.browser() is None:
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell)")
    repo = tmp_path / "repo"
    for rel in ("dvc.yaml", "params.yaml", ".dvc/plots/series.json"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root / rel, repo / rel)
    shutil.copytree(repo_root / "metrics/headline", repo / "metrics/headline")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(bin_dir / "dvc"), "init", "-q", "--force"], cwd=repo, check=True, env=env)
    (repo / ".dvc/plots").mkdir(exist_ok=True)  # `dvc init --force` empties .dvc/
    shutil.copy(repo_root / ".dvc/plots/series.json", repo / ".dvc/plots/series.json")
    # the plots' sources that a repro writes and git does not carry (metrics/quality/ is cached)
    (repo / "metrics/quality").mkdir()
    (repo / "metrics/quality/gan_by_k.csv").write_text("k,series,fid_mean\n2,fastgan/n2,40.0\n4,fastgan/n4,30.0\n")
    if not (repo / "metrics/headline/curves_A.csv").is_file():  # before the dvc.lock that writes it
        (repo / "metrics/headline/curves_A.csv").write_text("series,epoch,val_per_image_iou\nREAL fold0 (paper),1,0.1\n"
                                                            "REAL fold0 (paper),2,0.2\n")  # fmt: skip
    default = subprocess.run([str(bin_dir / "dvc"), "plots", "show", "-o", "online"], cwd=repo, env=env)
    assert default.returncode == 0
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        offline_plots.install(repo)
    except offline_plots.OfflinePlotsError as e:
        pytest.skip(f"the template needs the npm packages: {e}")
    finally:
        os.chdir(cwd)
    r = subprocess.run([str(bin_dir / "dvc"), "plots", "show"], cwd=repo, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "WARNING" not in r.stderr, r.stderr
    shown = offline_plots.check(repo / "dvc_plots/index.html", tmp_path / "shot.png")
    assert shown["plots"] >= 4 and shown["drawn"] >= shown["plots"], shown
    assert shown["non_white"] > 0.01, shown  # not a blank page
    blank = offline_plots.check(repo / "online/index.html", tmp_path / "online.png")
    assert blank["drawn"] == 0 and blank["non_white"] < 0.005, blank  # what a user saw offline before


# ------------------------------------------------------------------ item 6: the MLflow runs table


@pytest.mark.slow
def test_mlflow_link_opens_run_names_whole_and_headline_columns(mlflow_server, monkeypatch, tmp_path):
    """The experiment as the stages create it, opened by the link `make mlflow-ui` prints, in
    headless Chromium: the shared view puts the run names at full width and the headline
    metrics as columns (the default view shows neither)."""
    import re

    import mlflow

    from pipeline.infra import mlflow_tracker, offline_plots

    exe = offline_plots.browser()
    if exe is None:
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    exp_id = mlflow_tracker.ensure_experiment()
    mlflow.set_tracking_uri(mlflow_server)
    long_name = "segment/A/REAL+FAKE_1_ST1to1000/fold0"
    for name, metrics in (("quality/singan/gss0", {"fid": 7.5, "sifid": 5.25, "lpips": 0.125}), (long_name, {"iou": 0.375, "f1": 0.5})):
        with mlflow.start_run(experiment_id=exp_id, run_name=name):
            mlflow.log_metrics({**metrics, **{f"other_{i}": float(i) for i in range(12)}})

    def dom(url: str) -> str:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,800", "--virtual-time-budget=20000",
               "--dump-dom", url]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout

    def widths(html: str) -> dict[str, int]:
        return {c: int(w) for c, w in re.findall(r'col-id="([^"]+)"[^>]*?style="[^"]*?width: (\d+)px', html)}

    shared = widths(dom(mlflow_tracker.ui_url(mlflow_server, exp_id)))
    assert shared.get(mlflow_tracker.RUN_NAME_COLUMN, 0) >= 8 * len(long_name), shared  # about 7 px a character
    assert all(f"metrics.`{m}`" in shared for m in mlflow_tracker.HEADLINE_COLUMNS), sorted(shared)
    default = widths(dom(mlflow_tracker.ui_url(mlflow_server, exp_id).split("&viewStateShareKey")[0]))
    assert not any(c.startswith("metrics.") for c in default), sorted(default)
    assert default.get(mlflow_tracker.RUN_NAME_COLUMN, 0) < shared[mlflow_tracker.RUN_NAME_COLUMN]


# ------------------------------------------------------------------ item 1: every README code line


def _readme_code_lines() -> list[str]:
    """Every command of README.md's code: the ```bash blocks and the 4-space indented ones."""
    import re

    text = (ROOT / "README.md").read_text()
    lines = [line for b in re.findall(r"```bash\n(.*?)```", text, re.S) for line in b.splitlines()]
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += [line for line in outside.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    return [c for line in lines if (c := line.split("  #")[0].strip()) and not c.startswith("#")]


# How each README line is exercised: "run" (here, as written, in a shell with nothing activated),
# "offline: <extra args>" (run with the README's documented offline form), "dry" (`make -n`
# prints the documented `dvc exp run` form; the run itself is the test named after it), or the
# tests that run it (slow or long: whole pipelines), or why it cannot run here (GPU).
README_LINES: dict[str, tuple[str, ...]] = {
    r"make demo": ("tests/test_clean_clone.py::test_fresh_clone_make_demo_leaves_git_status_clean",),
    r"make test": ("tests/test_readme.py::test_the_two_commands_and_ci",),
    r"make cpu DATA=\S+": ("dry", "dvc exp run -S profile=cpu -S data.source=folder -S data.folder="),
    r"make cpu-pretrained": ("dry", "dvc exp run -S profile=cpu -S data.source=kvasir-seg"),
    r"\.venv/bin/dvc exp run -S profile=paper": (
        "tests/test_own_data.py::test_failed_paper_run_keeps_the_data_and_says_how_to_get_back",),
    r"\.venv/bin/dvc exp run -S data\.source=folder -S data\.folder=/path/to/your/data": (
        "tests/test_own_data.py::test_readme_own_data_line_runs_the_data_stage_on_real_pairs",
        "tests/test_own_data.py::test_readme_own_data_line_whole_pipeline_reports_folder"),
    r"\.venv/bin/singanseg (train|sample|stylize|train-many) .*": (
        "tests/test_readme.py::test_library_commands_run_as_written",),
    r"\.venv/bin/singanseg (import-authors \S+ --out|info) \S+": (
        "tests/test_authors_import.py::test_cli_import_and_info_show_provenance",),
    r"\.venv/bin/dvc exp run -S singan\.source=authors -S singan\.authors_dir=/path/to/TrainedModels": (
        "tests/test_authors_pipeline.py::test_readme_authors_line_runs_every_stage_and_the_report_names_the_source",),
    r"\.venv/bin/python -m pipeline\.segment --grid B --set external_synthetic\.folders\.singan_st1to1000=\S+": (
        "tests/test_segment_external.py::test_readme_segment_line_trains_grid_b_on_the_authors_pairs_without_a_generator",),
    r"\.venv/bin/python -m pipeline\.metrics fid real/images synthetic/images": ("run",),
    r"\.venv/bin/python -m pipeline\.metrics sifid real/images synthetic/images --dims 64": (
        "offline: --network inception_fid",),
    r"\.venv/bin/dvc (exp run -n samples\d|exp show|metrics diff|plots diff) .*": (
        "tests/test_first_hour.py::test_readme_exp_show_fits_120_columns_with_values",
        "tests/test_dvc_sweep.py::test_two_value_sweep_compares_in_exp_show_metrics_diff_and_plots_diff"),
    r"\.venv/bin/python -m pipeline\.plan --profile paper": ("run",),
    r"\.venv/bin/python -m pipeline\.plan --profile paper --calibrate --data \S+": (
        "tests/test_plan.py::test_paper_calibration_on_two_real_pairs",),
    r"\.venv/bin/python -m pipeline\.plan --profile paper --calibrate --device cuda --json": ("gpu",),
    r"bash benchmarks/gpu_check\.sh": ("gpu",),
}


def _how(line: str) -> tuple[str, ...]:
    import re

    matches = [how for pattern, how in README_LINES.items() if re.fullmatch(pattern, line)]
    assert len(matches) == 1, f"README line {line!r} matches {len(matches)} entries of README_LINES: say how it is tested"
    return matches[0]


def test_every_readme_line_says_how_it_is_tested():
    lines = _readme_code_lines()
    assert len(lines) >= 20, lines
    for line in lines:
        for ref in _how(line):
            if "::" in ref:
                path, name = ref.split("::")
                assert f"def {name}(" in (ROOT / path).read_text(), f"{line!r}: {ref} does not exist"
            elif ref == "dry":
                r = subprocess.run(["make", "-n", *line.split()[1:]], cwd=ROOT, env=clean_env(), capture_output=True,
                                   text=True)  # fmt: skip
                assert r.returncode == 0 and _how(line)[1] in r.stdout, (line, r.stdout[-1000:])
                break


@pytest.mark.slow
def test_readme_metric_lines_run_in_a_clean_shell(tmp_path, kvasir_dir):
    """The `run` and `offline:` lines, as written (their folders made from 4 + 4 real images)."""
    from PIL import Image

    images = sorted((kvasir_dir / "images").iterdir())[:8]
    for i, src in enumerate(images):
        dest = tmp_path / ("real" if i < 4 else "synthetic") / "images" / f"p{i % 4}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.open(src).convert("RGB").resize((64, 64)).save(dest)
    for line in _readme_code_lines():
        how = _how(line)[0]
        if how != "run" and not how.startswith("offline:"):
            continue
        cmd = line.replace(" real/images", f" {tmp_path}/real/images").replace(" synthetic/images", f" {tmp_path}/synthetic/images")
        cmd += " " + how.removeprefix("offline:").strip() if how.startswith("offline:") else ""
        r = subprocess.run(cmd, shell=True, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
        if "pipeline.metrics" in cmd:
            assert json.loads(r.stdout)["count"] == 4, r.stdout


def test_every_stage_command_names_python3():
    """A fresh login shell on Debian (and on this machine) has `python3` but no `python`: a
    stage command `python -m ...` dies with `/bin/sh: python: not found` before the
    interpreter guard can run; `python3 -m ...` reaches the guard (or the venv's, first on PATH)."""
    import re

    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    cmds = [s["cmd"] if isinstance(s, dict) and "cmd" in s else s["do"]["cmd"] for s in stages.values()]
    assert cmds
    for cmd in cmds:
        assert not re.search(r"(^|\s)python\s", cmd), cmd
        assert cmd.startswith("python3 -m pipeline."), cmd
