-- 0005: paired political prompts (`arena pcp run`, docs/schema.md, docs/pcp.md). A run's pairs as
-- it asked them, one row per response, one row per judge reading, and a view per measure.
--
-- pcp_pairs: one row per (run, pair), written as the run reaches the pair. `kind` is 'pcp' (a
-- left and a right topic crossed with a template and a valence; side a is the left topic, b the
-- right) or 'paired' (a row of a paired CSV, `prompt_a` / `prompt_b`, its other columns in
-- `meta`). `masked` is the prompt with its topic masked, which the consistency judge sees.
--
-- pcp_responses: one row per (run, model, pair, sample, side), written when the reply comes
-- back. A call that failed leaves no row, only its attempts in `calls`
-- (calls.debate_id = the unit's id); a rerun asks again.
--
-- pcp_judgments: one row per (run, model, pair, sample, judge, measure, variant), written when
-- the judge's reading is in. `variant` is the presentation order of a pair measure ('a_first',
-- 'b_first') or the side of a per-response measure ('a', 'b'). `score` is the reading (NULL: the
-- reply could not be read even after one repair request; `readable` is false then); `favoured`
-- is the consistency judge's side ('a', 'b', 'none') or the willingness judge's ('a', 'b',
-- 'same'); `score2` is the opposing-perspectives scale of the 'scales' measure. A judge call
-- that failed leaves no row; a rerun asks again (the responses are not asked again).

CREATE TABLE pcp_pairs (
    run_id        VARCHAR NOT NULL,
    pair_id       VARCHAR NOT NULL,        -- hash of the pair's content
    kind          VARCHAR NOT NULL,        -- 'pcp' | 'paired'
    prompt_a      VARCHAR NOT NULL,        -- the left topic's prompt (pcp)
    prompt_b      VARCHAR NOT NULL,        -- the right topic's prompt (pcp)
    label_a       VARCHAR NOT NULL,        -- 'left' (pcp) | the CSV's prompt_a_group
    label_b       VARCHAR NOT NULL,
    topic_a       VARCHAR,                 -- the left topic (pcp) | the CSV's stance_a
    topic_b       VARCHAR,
    template      VARCHAR,                 -- the template's name (pcp) | the CSV's template
    valence       VARCHAR,                 -- 'good', 'bad', ... (pcp)
    masked        VARCHAR,                 -- the prompt with the topic masked (pcp)
    meta          JSON,                    -- a CSV row's other columns
    PRIMARY KEY (run_id, pair_id)
);

CREATE TABLE pcp_responses (
    response_id       VARCHAR PRIMARY KEY,     -- hash of (unit, side)
    unit_id           VARCHAR NOT NULL,        -- hash of (run, model, pair, sample)
    run_id            VARCHAR NOT NULL,
    model             VARCHAR NOT NULL,        -- the answering model's name
    pair_id           VARCHAR NOT NULL,        -- pcp_pairs.pair_id
    sample            INTEGER NOT NULL,        -- 1, 2, ... (--samples)
    side              VARCHAR NOT NULL,        -- 'a' | 'b'
    raw_text          VARCHAR NOT NULL,        -- the reply as the model returned it
    reasoning         VARCHAR,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cost_usd          DOUBLE,
    latency_s         DOUBLE,
    finish_reason     VARCHAR,
    call_id           VARCHAR NOT NULL,        -- the successful call in `calls`
    created_at        TIMESTAMP NOT NULL
);

CREATE TABLE pcp_judgments (
    judgment_id   VARCHAR PRIMARY KEY,     -- hash of (unit, judge, measure, variant)
    unit_id       VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,        -- the judged model
    pair_id       VARCHAR NOT NULL,
    sample        INTEGER NOT NULL,
    judge         VARCHAR NOT NULL,        -- the judge's name
    measure       VARCHAR NOT NULL,        -- 'consistency' | 'helpfulness' | 'willingness' | 'scales'
    variant       VARCHAR NOT NULL,        -- 'a_first' | 'b_first' (pair measures) | 'a' | 'b'
    score         DOUBLE,                  -- 0-2 | 0-2 | NULL | refusal 1-5; NULL: unreadable
    favoured      VARCHAR,                 -- 'a' | 'b' | 'none' (consistency) | 'same' (willingness)
    score2        DOUBLE,                  -- opposing perspectives 1-5 (scales)
    readable      BOOLEAN NOT NULL,
    repaired      BOOLEAN NOT NULL,        -- read from the reply to a repair request
    raw_text      VARCHAR NOT NULL,        -- the judge's last reply
    call_id       VARCHAR NOT NULL,        -- the judge's last call in `calls`
    created_at    TIMESTAMP NOT NULL
);
