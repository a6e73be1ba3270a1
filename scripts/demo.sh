#!/usr/bin/env bash
# The main job: serve the best model we have, score it on the 20-task suite with agents v1
# and v2, print the table and the command that opens the interactive agent on the same server.
#
#   make demo                 the best available model: the toolchat recipe's DPO model when
#                             runs/toolchat has one, else SmolLM2-135M-Instruct as pulled
#   DEMO_FAST=1 make demo     the whole recipe at nano scale (tiny model, a few steps, 3 tasks)
#
# Everything the demo writes goes under demo/ (ignored by git); rerun it freely.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
OUT=demo
PORT=${DEMO_PORT:-8765}
RECIPE=${DEMO_RECIPE:-runs/toolchat}
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "${DEMO_FAST:-0}" = "1" ]; then
  step "toolchat recipe, nano scale: pretrain a tiny base -> synth data -> SFT -> DPO -> int8 -> eval -> report"
  "$BIN/iclaw" eval recipe toolchat --fast --out "$OUT/toolchat-fast" --jobs 2
  step "done: $OUT/toolchat-fast/report.md (the full-size run: iclaw eval recipe toolchat --budget-min 60)"
  exit 0
fi

step "1. the model: the recipe's fine-tuned one if there is one, else the base model"
"$BIN/llm" pull smollm2-135m-instruct >/dev/null
if [ -f "$RECIPE/ckpt/dpo/meta.json" ]; then
  MODEL_PATH="$RECIPE/ckpt/dpo"; NAME=toolchat-dpo
elif [ -f "$RECIPE/ckpt/sft/meta.json" ]; then
  MODEL_PATH="$RECIPE/ckpt/sft"; NAME=toolchat-sft
else
  MODEL_PATH=smollm2-135m-instruct; NAME=smollm2-135m-instruct
  echo "no fine-tuned model under $RECIPE yet: scoring the base model (it solves ~0 tasks)."
  echo "teach it the tools first with: iclaw eval recipe toolchat --out $RECIPE --budget-min 60"
fi
echo "model: $NAME ($MODEL_PATH)"

step "2. llm serve on port $PORT (stays up after the demo for the interactive agent)"
if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then
  echo "a server already answers on port $PORT; stop it first (or set DEMO_PORT)"; exit 1
fi
nohup "$BIN/llm" serve --model "$MODEL_PATH" --served-model-name "$NAME" --port "$PORT" >"$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' ERR INT TERM
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
  sleep 1
done

step "3. iclaw eval: the suite with agents v1 and v2 at temperature 0"
"$BIN/iclaw" eval --suite tasks/ --model "$NAME=http://127.0.0.1:$PORT/v1" --agent v1,v2 --temperature 0 \
  --jobs 2 --out "$OUT/evals" || true
"$BIN/iclaw" eval report latest --out "$OUT/evals" --format md || true

step "done: the server is still running (pid $SERVER; stop it with: kill $SERVER)"
echo "talk to the same model with the interactive agent:"
echo "  $BIN/iclaw --base-url http://127.0.0.1:$PORT/v1 --model $NAME --workspace ./ --temperature 0"
