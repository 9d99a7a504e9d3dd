-- 0004: BBQ runs (`arena bbq run`, docs/schema.md, docs/bbq.md). A run's items as it showed
-- them, one row per answer, and a view that scores each answer.
--
-- bbq_items: one row per (run, item), written as the run reaches the item. The letters and option
-- texts are those the models were shown (options may be shuffled per item, `--shuffle-options`);
-- `split`, `split_seed` and `dev_fraction` say which part of BBQ the item was drawn from, so that a
-- report can say which items it covers.
--
-- bbq_responses: one row per (run, model, item, sample), written when the answer comes back.
-- `answer` is the letter read from the reply (NULL when none can be read); p_a, p_b and p_c are
-- the probabilities of the letters among the first token's top alternatives, when the run asked
-- for them and the backend returned them. A call that failed leaves no row here, only its
-- attempts in `calls` (calls.debate_id = response_id); a rerun asks again.

CREATE TABLE bbq_items (
    run_id            VARCHAR NOT NULL,
    item_id           VARCHAR NOT NULL,        -- '<category>:<example_id>'
    category          VARCHAR NOT NULL,
    question_index    VARCHAR NOT NULL,        -- the template within the category
    example_id        INTEGER NOT NULL,
    context_condition VARCHAR NOT NULL,        -- 'ambig' | 'disambig'
    question_polarity VARCHAR NOT NULL,        -- 'neg' | 'nonneg'
    context           VARCHAR NOT NULL,
    question          VARCHAR NOT NULL,
    option_a          VARCHAR NOT NULL,        -- the options as shown, under A, B, C
    option_b          VARCHAR NOT NULL,
    option_c          VARCHAR NOT NULL,
    gold_letter       VARCHAR NOT NULL,        -- the correct option's letter as shown
    unknown_letter    VARCHAR NOT NULL,        -- the "cannot be determined" option's letter
    biased_letter     VARCHAR,                 -- the stereotype-consistent answer; NULL: no target
    split             VARCHAR NOT NULL,        -- 'dev' | 'train' | 'all'
    split_seed        BIGINT,                  -- seed of the template-disjoint split (NULL for 'all')
    dev_fraction      DOUBLE,                  -- share of each category's templates in dev (NULL for 'all')
    PRIMARY KEY (run_id, item_id)
);

CREATE TABLE bbq_responses (
    response_id       VARCHAR PRIMARY KEY,     -- hash of (run, model, item, sample)
    run_id            VARCHAR NOT NULL,
    model             VARCHAR NOT NULL,        -- the model's name in models.yaml
    item_id           VARCHAR NOT NULL,        -- bbq_items.item_id
    sample            INTEGER NOT NULL,        -- 1, 2, ... (--samples)
    raw_text          VARCHAR NOT NULL,        -- the reply as the model returned it
    reasoning         VARCHAR,                 -- reasoning returned beside the reply
    answer            VARCHAR,                 -- 'A' | 'B' | 'C' read from the reply; NULL: unreadable
    p_a               DOUBLE,                  -- P(first token reads A), when top logprobs were returned
    p_b               DOUBLE,
    p_c               DOUBLE,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cost_usd          DOUBLE,
    latency_s         DOUBLE,
    finish_reason     VARCHAR,
    call_id           VARCHAR NOT NULL,        -- the successful call in `calls`
    created_at        TIMESTAMP NOT NULL
);

CREATE VIEW bbq_answers AS
SELECT r.run_id, r.model, r.item_id, r.sample,
       i.category, i.question_index, i.example_id, i.context_condition, i.question_polarity,
       i.split, r.answer, i.gold_letter, i.unknown_letter, i.biased_letter,
       r.answer IS NOT NULL AND r.answer = i.gold_letter AS correct,
       r.answer IS NOT NULL AND r.answer = i.unknown_letter AS unknown,
       coalesce(r.answer = i.biased_letter, false) AS biased,
       r.answer IS NULL AS unparseable,
       r.p_a, r.p_b, r.p_c, r.raw_text, r.response_id
FROM bbq_responses r
JOIN bbq_items i ON i.run_id = r.run_id AND i.item_id = r.item_id;
