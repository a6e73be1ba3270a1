"""Training: the shared loop (`loop`), its pieces (config, optimizer groups, LR schedules,
run directory, summary, distributed set-up) and the stages built on it (`pretrain`).

Nothing in `llm.infer` or `llm.serve` imports this package.
"""
