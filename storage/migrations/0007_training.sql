-- 0007: training runs (`arena train dpo`, docs/training.md, docs/schema.md). One row per run and
-- one row per metric per logging step, so that which adapter came from which debates, and how its
-- training went, are SQL queries like everything else.
--
-- training_runs: one row per run, written when it starts and updated when it ends. `run_id` is
-- derived from (kind, output folder): rerunning the same command resumes the same run. `status`
-- is 'running', then 'done' (every step trained), 'stopped' (the perplexity safety stop, or
-- nothing left to keep: `stop_reason` says why), 'failed' or 'interrupted' (`stop_reason` holds
-- the error; a rerun resumes from the last checkpoint). `adapter_step` is the step of the adapter
-- left in `output_dir` (NULL: none was kept). `config` is every setting (TRL's DPOConfig, the
-- LoRA config, where each non-default came from); `pairs` is the training data's provenance: the
-- folder, its splits' sizes, the models and the debates the pairs came from (`debate_ids`), and
-- what `arena pairs` recorded of its database, run and filters when the folder has it.
--
-- training_metrics: one row per (run, step, metric) at each logging step: TRL's 'loss',
-- 'rewards/margins', 'rewards/accuracies', 'learning_rate', ... as TRL names them, plus ours:
-- 'tokens_per_second' (training tokens since the previous log, per second of wall time) and
-- 'eval_perplexity' (each safety check; step 0 is the base model's). A rerun that trains a step
-- again replaces its rows.

CREATE TABLE training_runs (
    run_id        VARCHAR PRIMARY KEY,     -- '<kind>-' + hash of (kind, output folder)
    kind          VARCHAR NOT NULL,        -- 'dpo' | 'sft'
    base          VARCHAR NOT NULL,        -- --base as given: a hub id, a folder, a known name
    output_dir    VARCHAR NOT NULL,        -- absolute path of --out: the adapter, checkpoints
    status        VARCHAR NOT NULL,        -- 'running' | 'done' | 'stopped' | 'failed' | 'interrupted'
    stop_reason   VARCHAR,                 -- why it ended before its last step (NULL: it did not)
    steps         INTEGER,                 -- optimizer steps trained so far
    adapter_step  INTEGER,                 -- the step of the adapter in output_dir (NULL: none)
    config        JSON NOT NULL,           -- every setting
    pairs         JSON NOT NULL,           -- the training data's provenance
    command       VARCHAR,                 -- the command line
    arena_version VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP                -- NULL while running
);

CREATE TABLE training_metrics (
    run_id        VARCHAR NOT NULL,        -- training_runs.run_id
    step          INTEGER NOT NULL,        -- the optimizer step (global, across resumes)
    name          VARCHAR NOT NULL,        -- 'loss', 'rewards/margins', 'eval_perplexity', ...
    value         DOUBLE NOT NULL,         -- may be NaN or infinity (a perplexity that blew up)
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, step, name)
);
