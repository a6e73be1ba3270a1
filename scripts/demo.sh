#!/usr/bin/env bash
# The main job, end to end, as far as it exists: pull a real model and chat with it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "== llm pull smollm2-135m-instruct"
$BIN/llm pull smollm2-135m-instruct
echo "== llm generate (greedy, our own model code)"
$BIN/llm generate smollm2-135m-instruct --chat "What is the capital of France?"
