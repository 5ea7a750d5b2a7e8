"""The dashboard: ``GET /dashboard`` in headless Chromium (Debian ``chromium``) against a real
uvicorn server with a finished run and a saved mixture; the rendered DOM must hold the run's
loss, LR and composition charts and the mixture's chart, each series an SVG element. Without a
token the page draws nothing. The run-folder endpoints keep to the runs root and need the token.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from api_server import Server
from fastapi.testclient import TestClient
from run_fixtures import MIX_PHASES, make_corpus, make_run

from api.app import create_app
from api.paths import DataRoots
from trainer.report import write_run_report

TOKEN = "dashboard-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUN = "smol-wsd"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Dom(HTMLParser):
    """SVG charts and series, mixture and run cards, report frames, body attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.charts: list[dict] = []
        self.series: list[dict] = []
        self.body: dict = {}
        self.frames: list[dict] = []
        self.buttons: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "body":
            self.body = attributes
        if tag == "svg" and "data-chart" in attributes:
            self.charts.append(attributes)
        if "data-series" in attributes:
            self.series.append({"tag": tag, **attributes})
        if tag == "iframe":
            self.frames.append(attributes)
        if tag == "button" and "data-report" in attributes:
            self.buttons.append(attributes)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    (root / "data").mkdir()
    corpus, tokenizer = make_corpus(root / "data" / "corpus")
    run = make_run(root / "runs", RUN, corpus, tokenizer)
    write_run_report(run)
    (root / "runs" / "not-a-run").mkdir()  # listed nowhere
    outside = root / "elsewhere"
    shutil.copytree(run / "train", outside / "train")
    (root / "runs" / "link-out").symlink_to(outside, target_is_directory=True)
    saved = os.environ.get("MIDTRAIN_API_TOKEN")
    os.environ["MIDTRAIN_API_TOKEN"] = TOKEN  # create_app reads it once
    try:
        app = create_app(state_path=str(root / "state.duckdb"), data_roots=DataRoots((root / "data",)),
                         runs_root=root / "runs")
    finally:
        if saved is None:
            del os.environ["MIDTRAIN_API_TOKEN"]
        else:
            os.environ["MIDTRAIN_API_TOKEN"] = saved
    server = Server(app)
    mixture = {"name": "anneal-demo", "corpus": [str(corpus)], "tokenizer": str(tokenizer), "seed": 1,
               "phases": MIX_PHASES}
    response = httpx.post(f"{server.url}/mixtures", json=mixture, headers=AUTH, timeout=60)
    assert response.status_code == 201, response.text
    yield {"url": server.url, "root": root, "run": run, "app": app}
    server.stop()


def dump_dom(url: str, tmp_path: Path) -> Dom:
    binary = chromium()
    if binary is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium); the dashboard is not rendered")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
               "--metrics-recording-only", "--mute-audio", f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=15000", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return Dom(done.stdout)


def test_the_page_draws_a_finished_runs_charts_and_the_mixtures(served, tmp_path):
    dom = dump_dom(f"{served['url']}/dashboard#token={TOKEN}&report={RUN}", tmp_path)
    assert dom.body.get("data-loaded") == "ok"
    charts = {(chart["data-chart"], chart.get("data-run") or chart.get("data-mixture")) for chart in dom.charts}
    assert {("loss", RUN), ("lr", RUN), ("composition", RUN), ("mixture", "anneal-demo")} <= charts
    assert not any(name in {"not-a-run", "link-out"} for _, name in charts)  # neither is a run of the root

    lines = {item["data-series"]: item for item in dom.series if item["tag"] == "polyline"}
    assert {"loss:overall", "loss:web", "loss:code", "loss:math", "lr:lr"} <= set(lines)
    for name in ("loss:overall", "lr:lr"):
        points = lines[name]["points"].split()
        assert len(points) == int(lines[name]["data-points"]) >= 10  # every step of the run drawn
        assert len({point.split(",")[1] for point in points}) > 1  # a curve, not a flat line
    bars = [item for item in dom.series if item["tag"] == "rect" and item["data-series"].startswith("composition:")]
    # three phases, target and realised each, stacked by domain: stable and anneal three domains, long two
    assert len(bars) == 2 * (3 + 3 + 2)
    web = {item["data-series"]: float(item["data-share"]) for item in bars}
    assert web["composition:stable target:web"] == pytest.approx(0.7, abs=1e-3)
    mixture = [item for item in dom.series if item["tag"] == "rect" and item["data-series"].startswith("mixture:")]
    assert len(mixture) == 3 + 3 + 2
    assert [button["data-report"] for button in dom.buttons] == [RUN]
    frame = next(frame for frame in dom.frames if frame.get("data-report-frame") == RUN)
    assert "midtrain run report: smol-wsd" in frame["srcdoc"] and "data:image/png;base64," in frame["srcdoc"]


def test_without_a_token_the_page_shows_no_data(served, tmp_path):
    dom = dump_dom(f"{served['url']}/dashboard", tmp_path)
    assert dom.body.get("data-loaded") == "error"
    assert dom.charts == [] and dom.series == []


def test_run_folder_endpoints_need_the_token_and_keep_to_the_runs_root(served):
    url = served["url"]
    page = httpx.get(f"{url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for path in ("/dashboard/runs", f"/dashboard/runs/{RUN}", f"/dashboard/runs/{RUN}/report"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    listed = httpx.get(f"{url}/dashboard/runs", headers=AUTH).json()
    assert [item["name"] for item in listed["items"]] == [RUN] and listed["items"][0]["has_report"]
    data = httpx.get(f"{url}/dashboard/runs/{RUN}", headers=AUTH).json()
    assert data["name"] == RUN and len(data["phases"]) == 3 and "corpus" not in data["missing"]
    report = httpx.get(f"{url}/dashboard/runs/{RUN}/report", headers=AUTH)
    assert report.status_code == 200 and report.text == (served["run"] / "report.html").read_text()
    assert httpx.get(f"{url}/dashboard/runs/link-out", headers=AUTH).status_code == 422  # a link out of the root
    assert httpx.get(f"{url}/dashboard/runs/not-a-run", headers=AUTH).status_code == 404
    for bad in (".hidden", "a%2Fb", "%2E%2E", "..%2Fsmol-wsd"):  # a bare ".." the client resolves itself
        assert httpx.get(f"{url}/dashboard/runs/{bad}", headers=AUTH).status_code in (404, 422), bad


def test_a_report_that_links_out_of_its_run_is_not_served(served, tmp_path):
    run = served["root"] / "runs" / "sneaky"
    shutil.copytree(served["run"] / "train", run / "train", ignore=shutil.ignore_patterns("checkpoints"))
    secret = tmp_path / "secret.html"
    secret.write_text("secret")
    (run / "report.html").symlink_to(secret)
    response = httpx.get(f"{served['url']}/dashboard/runs/sneaky/report", headers=AUTH)
    assert response.status_code == 404 and "secret" not in response.text
    shutil.rmtree(run)


def test_the_page_is_public_but_not_in_the_openapi_document(served):
    paths = TestClient(served["app"]).app.openapi()["paths"]
    assert "/dashboard" not in paths
    assert {"/dashboard/runs", "/dashboard/runs/{name}", "/dashboard/runs/{name}/report"} <= set(paths)
