"""The per-run report (``midtrain report RUN``) and the comparison (``midtrain compare``) over
two real tiny runs (tests/run_fixtures.py): every section there, every figure an embedded PNG
that decodes, nothing fetched from outside, and clear notices where parts of a run are missing."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib import image
from run_fixtures import make_corpus, make_run

from api.cli import main
from trainer.report import RunData, collect, phase_effects, run_data

SECTIONS = {"funnel", "composition", "lr", "rope", "loss", "evaluation"}
FIGURES = {"funnel", "composition", "lr", "rope", "loss", "eval_perplexity", "passkey", "fim"}
PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What the tests look at: sections, figures with their image sources, missing notices,
    table header cells, and anything that would load from elsewhere."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.figures: dict[str, str] = {}
        self.missing: list[str] = []
        self.headers: list[str] = []
        self.external: list[str] = []
        self.cells: list[str] = []
        self._figure: str | None = None
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "data-section" in attributes:
            self.sections.append(attributes["data-section"])
        if "data-missing" in attributes:
            self.missing.append(attributes["data-missing"])
        if tag == "figure":
            self._figure = attributes.get("data-figure")
        if tag == "img" and self._figure:
            self.figures[self._figure] = attributes["src"]
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.external.append(tag)
        for key in ("src", "href"):
            value = attributes.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        self._in = tag if tag in ("th", "td") else None

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        self._in = None

    def handle_data(self, data):
        if self._in == "th":
            self.headers.append(data)
        elif self._in == "td":
            self.cells.append(data)


def decoded(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return base64.b64decode(src[len(prefix):], validate=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    corpus, tokenizer = make_corpus(root / "corpus")
    return {
        "wsd": make_run(root / "runs", "wsd-yarn", corpus, tokenizer),
        "cosine": make_run(root / "runs", "cosine-pi", corpus, tokenizer,
                           schedule={"kind": "cosine", "warmup_tokens": 256, "min_lr_ratio": 0.1},
                           long_rope={"kind": "pi", "factor": 2.0}),
    }


def report_of(run: Path, capsys) -> Page:
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {run / 'report.html'}"
    return Page((run / "report.html").read_text())


def test_report_has_every_section_with_embedded_decodable_figures(runs, capsys):
    run = runs["wsd"]
    page = report_of(run, capsys)
    assert set(page.sections) == SECTIONS
    assert page.missing == []
    assert page.external == []  # no script, style sheet, font or image from anywhere else
    assert set(page.figures) == FIGURES
    for name, src in page.figures.items():
        png = decoded(src)
        assert png.startswith(PNG)
        height, width, _ = image.imread(io.BytesIO(png)).shape
        assert height > 100 and width > 100, name
    beside = sorted(path.name for path in (run / "report").glob("*.png"))
    assert beside == sorted(["funnel_0.png", "composition.png", "lr.png", "rope.png", "loss.png",
                             "eval_perplexity.png", "passkey.png", "fim_exact_match.png"])
    assert decoded(page.figures["rope"]) == (run / "report" / "rope.png").read_bytes()


def test_report_tables_carry_the_runs_numbers(runs, capsys):
    run = runs["wsd"]
    page = report_of(run, capsys)
    text = (run / "report.html").read_text()
    # the funnel: 61 documents kept of 65 read, four dropped, as the corpus manifest says
    assert "input 65 documents, kept 61" in text and "exact_duplicate" in text
    # composition: target and realised share columns, per phase and source
    assert {"target share", "realised share", "tokens written"} <= set(page.headers)
    # RoPE: the long phase's YaRN with its attention scale, the first phase unscaled
    assert "yarn" in page.cells and "none" in page.cells and "attention scale" in page.headers
    # evaluation: perplexity per held-out set, passkey per context length, FIM
    assert {"held-out set", "128 tokens", "256 tokens", "exact match"} <= set(page.headers)
    phase_ends = [json.loads(line) for line in (run / "train" / "eval.jsonl").read_text().splitlines()]
    assert [record["phase"] for record in phase_ends] == ["stable", "anneal", "long"]


def test_report_degrades_to_notices_when_parts_are_missing(runs, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(runs["wsd"] / "train", bare / "train", ignore=shutil.ignore_patterns("checkpoints"))
    page = report_of(bare, capsys)
    assert set(page.sections) == SECTIONS  # every section is there, some as a notice
    assert {"recipe", "spec", "composition", "curation funnel", "RoPE frequencies"} <= set(page.missing)
    assert {"lr", "loss", "eval_perplexity", "passkey"} <= set(page.figures)
    assert "funnel" not in page.figures and "rope" not in page.figures
    text = (bare / "report.html").read_text()
    assert "no recipe.json" in text and "no mix build" in text

    # without eval.jsonl: the evaluation section says why
    (bare / "train" / "eval.jsonl").unlink()
    page = report_of(bare, capsys)
    assert "evaluation" in page.missing and "eval_perplexity" not in page.figures


def test_report_finds_spec_mixture_and_corpus_without_recipe_json(runs, tmp_path, capsys):
    """A training output folder alone: the spec from its checkpoint, the mix build from the
    spec, the corpus from the build's mixture.json."""
    alone = tmp_path / "alone"
    shutil.copytree(runs["cosine"] / "train", alone)
    data = collect(alone)
    assert data.spec_from == "the latest checkpoint" and data.build is not None and data.funnels
    page = report_of(alone, capsys)
    assert page.missing == ["recipe"]
    assert {"rope", "composition", "funnel", "loss"} <= set(page.figures)


def test_report_of_a_folder_without_training_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "error" in capsys.readouterr().err


def test_compare_puts_runs_side_by_side(runs, tmp_path, capsys):
    output = tmp_path / "out" / "compare.html"
    output.parent.mkdir()
    assert main(["compare", str(runs["wsd"]), str(runs["cosine"]), "--output", str(output)]) == 0
    assert capsys.readouterr().out.strip() == f"compare: {output}"
    page = Page(output.read_text())
    assert set(page.sections) == {"summary", "lr", "loss", "evaluation", "composition"}
    assert page.external == [] and page.missing == []
    assert set(page.figures) == {"lr", "loss", "loss_by_domain", "composition_0", "composition_1"}
    for src in page.figures.values():
        assert image.imread(io.BytesIO(decoded(src))).shape[0] > 100
    assert {"run", "schedule", "rope", "final loss", "passkey 256", "FIM exact match"} <= set(page.headers)
    assert {"wsd-yarn", "cosine-pi", "wsd", "cosine", "none → none → yarn", "none → none → pi"} <= set(page.cells)
    assert sorted(path.name for path in (tmp_path / "out" / "compare_figures").glob("*.png")) == [
        "composition_0.png", "composition_1.png", "loss.png", "loss_by_domain.png", "lr.png"]
    assert main(["compare", str(runs["wsd"])]) == 2  # one run is nothing to compare


def test_run_data_for_the_dashboard(runs):
    data = run_data(runs["wsd"], max_points=4)
    assert data["name"] == "wsd-yarn" and data["recipe"] == "wsd-yarn" and data["missing"] == {}
    assert [phase["name"] for phase in data["phases"]] == ["stable", "anneal", "long"]
    assert len(data["loss"]["tokens"]) == len(data["loss"]["values"]) == 4
    assert data["loss"]["tokens"][-1] == data["phases"][-1]["end"]  # the last point is kept
    assert set(data["loss_by_domain"]) >= {"web", "code", "math"}
    assert [phase["phase"] for phase in data["composition"]] == ["stable", "anneal", "long"]
    assert data["composition"][0]["target"] == pytest.approx({"web": 0.7, "code": 0.2, "math": 0.1}, abs=1e-3)
    assert len(data["evaluation"]["passkey"]) == 3
    json.dumps(data)  # plain JSON


def test_phase_effects_are_the_changes_between_phase_ends(tmp_path):
    def end(phase, web, code, passkey):
        return {"phase": phase, "phase_end": True, "passkey": passkey,
                "eval": {"general": {"loss_by_domain": {"web": web, "code": code}},
                         "anneal": {"loss_by_domain": {"code": 9.0}}}}

    data = RunData(run_dir=tmp_path, name="r", train_dir=tmp_path, evals=[
        {"phase": "general", "phase_end": False, "eval": {}},  # not a phase end: left out
        end("general", 3.0, 2.5, {"256": 0.5, "1024": 0.0}),
        end("anneal", 2.9, 2.0, {"256": 0.5, "1024": 0.125}),
        end("long", 2.95, 2.1, {"256": 0.75, "1024": 0.5}),
    ])
    rows = phase_effects(data)
    assert [(row["from"], row["phase"], row["held-out set"]) for row in rows] == [
        ("general", "anneal", "general"), ("anneal", "long", "general")]
    assert rows[0]["Δ loss code"] == pytest.approx(-0.5) and rows[0]["Δ loss web"] == pytest.approx(-0.1)
    assert rows[1]["Δ passkey 1024"] == pytest.approx(0.375) and rows[1]["Δ passkey 256"] == pytest.approx(0.25)
