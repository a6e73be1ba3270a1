#!/usr/bin/env bash
# The main job, end to end on a CPU in a few minutes:
#   real model -> fast inference -> train from scratch -> serve -> agent -> eval.
# Everything it writes goes under demo/ (ignored by git); rerun it freely.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
OUT=demo
PORT=${DEMO_PORT:-8765}
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. llm pull: SmolLM2-135M-Instruct, offline-capable"
"$BIN/llm" pull smollm2-135m-instruct

step "2. llm generate: greedy chat, computed by our own model code"
"$BIN/llm" generate smollm2-135m-instruct --chat "What is the capital of France?"

step "3. llm quantize + llm bench decode: INT8 weights against float32, same prompt"
[ -d "$OUT/smol-int8" ] || "$BIN/llm" quantize smollm2-135m-instruct --bits 8 --out "$OUT/smol-int8"
"$BIN/llm" bench decode smollm2-135m-instruct --tokens 48
"$BIN/llm" bench decode "$OUT/smol-int8" --tokens 48
"$BIN/llm" bench decode smollm2-135m-instruct --prompt-lookup --tokens 48

step "4. llm data prepare + llm train pretrain: a nano model on Python's own stdlib source"
[ -f "$OUT/data/data.json" ] || "$BIN/llm" data prepare stdlib:json,email,textwrap,argparse --vocab-size 1024 --out "$OUT/data"
"$BIN/llm" train pretrain --preset nano --data "$OUT/data" --name nano-demo --max-steps 150 --fresh \
  run.dir="$OUT/runs" eval.every=50 checkpoint.every=0
"$BIN/llm" generate "$OUT/runs/nano-demo/checkpoints/final" --prompt "def parse_args(" --max-tokens 60 --temperature 0.8 --seed 0

step "5. llm serve: OpenAI-compatible, continuous batching (background, port $PORT)"
"$BIN/llm" serve --model smollm2-135m-instruct --port "$PORT" >"$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
  sleep 1
done
curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"smollm2-135m-instruct","messages":[{"role":"user","content":"What is the capital of France?"}],"temperature":0,"max_tokens":20}'
echo
"$BIN/llm" bench serve --url "http://127.0.0.1:$PORT" --concurrency 1,4 --requests 8 --max-tokens 32

step "6. iclaw run: the agent drives the served model in a sandboxed workspace"
mkdir -p "$OUT/workspace"
printf 'name,total\nacme,120\nglobex,340\ninitech,95\n' >"$OUT/workspace/sales.csv"
"$BIN/iclaw" run "Read sales.csv and tell me which customer has the highest total." \
  --base-url "http://127.0.0.1:$PORT/v1" --model smollm2-135m-instruct --workspace "$OUT/workspace" \
  --max-steps 6 --temperature 0 || echo "(the 135M model did not finish the task; the line above says why)"

step "7. iclaw eval: the suite is valid (oracle passes all, null passes none), then a scored run"
"$BIN/iclaw" eval --validate --suite tasks/
"$BIN/iclaw" eval --suite tasks/ --model oracle --model null --jobs 2 --out "$OUT/evals"
"$BIN/iclaw" eval --suite tasks/ --model "smollm2-135m-instruct=http://127.0.0.1:$PORT/v1" --agent v1,v2 --temperature 0 \
  --task calc-product --task csv-top-customer --jobs 4 --out "$OUT/evals"
"$BIN/iclaw" eval report latest --out "$OUT/evals" --format md || true

step "done: outputs under $OUT/"
