#!/usr/bin/env bash
# The demo at GPU scale, for a lent GPU machine: mix examples/gpu/mixture.yaml (60M tokens) from
# the demo's curated corpus, train examples/gpu/train.yaml (19M parameters, compiled, bf16),
# write the run's report. What `make demo`'s tiny CPU model cannot show (retrieval beyond the
# original window after the long-context phase) is measured here against the anneal's end.
# Needs runs/demo/curated and runs/demo/tokenizer.json (`make demo` writes them). No Ray: the
# mixer and the trainer run in this process, as `--no-ray` does.
#     OUT=/some/dir bash bench/gpu_demo.sh
# MIXTURE and SPEC name other specs (SPEC's mixture must be RUN/mix and its output RUN/train).
# WEIGHTS=1 also returns the last checkpoint's weights in bf16 as weights.pt.0, .1, ... (join
# them with cat) for a look at the model on another machine.
# Results in $OUT (default bench/results): demo-gpu.json (phase effects, passkey per phase
# end, final figures, the training summary), report.html, gpu_demo.log, and run.tar.gz with
# the run's eval.jsonl, metrics.jsonl, summary.json and the mixture's report.json.
set -eu -o pipefail
OUT=${OUT:-bench/results}
RUN=${RUN:-runs/demo-gpu}
PY=${PYTHON:-python3}
MIXTURE=${MIXTURE:-examples/gpu/mixture.yaml}
SPEC=${SPEC:-examples/gpu/train.yaml}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
midtrain() { "$PY" -m api.cli "$@"; }
{
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c "import torch; print('torch', torch.__version__)"
    started=$SECONDS
    midtrain mix build "$MIXTURE" --output "$RUN/mix" | tail -20
    mixed=$SECONDS
    # A run stopped at TRAIN_SECONDS still gets its report: whatever phase ends it reached.
    timeout "${TRAIN_SECONDS:-600}" "$PY" -m api.cli train "$SPEC" --no-ray | grep -v "^W[0-9]" \
        || echo "train: stopped (exit ${PIPESTATUS[0]}) after $((SECONDS - mixed)) s"
    trained=$SECONDS
    midtrain report "$RUN"
    echo "wall: mix $((mixed - started)) s, train $((trained - mixed)) s, report $((SECONDS - trained)) s"
} 2>&1 | tee "$OUT/gpu_demo.log"
cp "$RUN/report.html" "$OUT/"
tar --ignore-failed-read -czf "$OUT/run.tar.gz" -C "$RUN" train/eval.jsonl train/metrics.jsonl train/summary.json mix/report.json
"$PY" - "$RUN" "$OUT/demo-gpu.json" <<'PYTHON'
import json, sys
from trainer.report import collect, final_metrics, phase_effects

run, output = sys.argv[1:]
data = collect(run, corpora=False)
result = {
    "run": run,
    "phase_effects": phase_effects(data),
    "phase_ends": [{"phase": end.get("phase"), "tokens_seen": end.get("tokens_seen"),
                    "passkey": end.get("passkey"), "fim_exact_match": end.get("fim_exact_match"),
                    "held_out_loss": {name: result.get("loss_by_domain") for name, result in (end.get("eval") or {}).items()}}
                   for end in data.phase_ends],
    "final": final_metrics(data),
    "summary": data.summary,
}
with open(output, "w") as file:
    json.dump(result, file, indent=2, default=str)
print(json.dumps(result["phase_effects"], indent=1))
PYTHON
if [ -n "${WEIGHTS:-}" ]; then  # the last checkpoint's weights in bf16, in parts a lent machine can return
    "$PY" - "$RUN/train/checkpoints" "$OUT" <<'PYTHON'
import io, sys
from pathlib import Path
import torch

checkpoints, out = map(Path, sys.argv[1:])
state = torch.load(checkpoints / (checkpoints / "latest").read_text().strip(), map_location="cpu", weights_only=False)
buffer = io.BytesIO()
torch.save({name: tensor.to(torch.bfloat16) for name, tensor in state["model"].items()}, buffer)
data, part = buffer.getvalue(), 15 << 20
for index in range(0, len(data), part):
    (out / f"weights.pt.{index // part}").write_bytes(data[index:index + part])
PYTHON
fi
