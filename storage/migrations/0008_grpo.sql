-- 0008: what a GRPO run samples (`arena train grpo`, docs/training.md, docs/schema.md).
--
-- training_completions: completions a training run generated, so that what the policy wrote and
-- how it was scored can be read beside the metrics. kind 'train': at each logging step, the
-- first `store_completions` completions of the step's generation batch (whole groups of one
-- prompt first), with each reward function's score (`rewards`, by the function's name; NULL
-- where a function does not apply to the row), their weighted sum (`reward`) and the advantage.
-- kind 'eval': every answer of a benchmark pass during training (`eval_every`), with what was
-- read from it in `rewards` (the item's id and its scored fields). A step trained again by a
-- resumed run replaces its rows.

CREATE TABLE training_completions (
    run_id        VARCHAR NOT NULL,        -- training_runs.run_id
    step          INTEGER NOT NULL,        -- the optimizer step (global, across resumes)
    kind          VARCHAR NOT NULL,        -- 'train' | 'eval'
    idx           INTEGER NOT NULL,        -- position in the step's sample
    prompt        VARCHAR NOT NULL,        -- the prompt's last user message
    completion    VARCHAR NOT NULL,
    reward        DOUBLE,                  -- weighted sum of the rewards (NULL: eval)
    rewards       JSON,                    -- per reward function (train); what was scored (eval)
    advantage     DOUBLE,                  -- GRPO's advantage (NULL: eval)
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, step, kind, idx)
);
