#!/usr/bin/env bash
# The closed loop on the embedded CPU model, end to end, in a few minutes on a laptop:
#
#   tournament -> pairs -> train dpo -> tournament (base vs adapter) -> rank --compare
#
#   bash examples/loop.sh [WORKDIR]     # default: loop/ (refuses an existing one)
#
# Everything lands in WORKDIR/arena.duckdb: both tournaments, the training run and its metrics,
# so "which adapter came from which debates" is one `arena sql` query (printed at the end).
# Needs the local and train extras: bash scripts/install.sh local,train
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:-loop}"
if [ -e "$work" ]; then
  echo "error: $work exists; give a new folder (bash examples/loop.sh WORKDIR)" >&2
  exit 2
fi
mkdir -p "$work"
db="$work/arena.duckdb"
say() { printf '\n== %s\n' "$*"; }

say "1. a tournament of the embedded model under three names (examples/loop-players.yaml)"
arena tournament --topics "$here/quickstart.yaml" --models "$here/loop-players.yaml" --db "$db" \
  --run loop-1 --quiet

say "2. turn-level preference pairs from its verdicts (one of the two motions held out)"
arena pairs --db "$db" --run loop-1 --out "$work/pairs" --format hf --test-fraction 0.5

say "3. a DPO LoRA adapter on the embedded model"
arena train dpo --pairs "$work/pairs" --base smollm2-135m-instruct --out "$work/adapter" \
  --db "$db" --config "$here/loop-dpo.yaml" --max-steps 8

say "4. the adapter as a contestant against its base"
cp "$here/loop-models.yaml" "$work/models.yaml"
arena models add-adapter smollm2-dpo --base smollm2-base --adapter "$work/adapter" \
  --models "$work/models.yaml"
arena tournament --topics "$here/quickstart.yaml" --models "$work/models.yaml" --db "$db" \
  --run loop-2 --quiet

say "5. what training did: the adapter's rating minus its base's, with its interval"
arena rank --db "$db" --run loop-2 --compare smollm2-base smollm2-dpo

say "which debates the adapter came from"
arena sql --db "$db" "
  SELECT t.run_id AS training_run, t.status, t.steps, d.run_id AS debates_of, count(*) AS debates
  FROM training_runs t
  CROSS JOIN unnest(CAST(t.pairs -> '\$.debate_ids' AS VARCHAR[])) AS u(debate_id)
  JOIN debates d ON d.debate_id = u.debate_id
  GROUP BY ALL"
