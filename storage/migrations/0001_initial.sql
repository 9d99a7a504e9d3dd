-- 0001: the tournament tables. Table and column names here are a public interface
-- (docs/schema.md); change them only through a new numbered migration.

CREATE TABLE runs (
    run_id          VARCHAR PRIMARY KEY,
    kind            VARCHAR NOT NULL,          -- 'tournament' (later: 'pcp', 'bbq')
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    status          VARCHAR NOT NULL,          -- 'running' | 'complete' | 'interrupted' | 'incomplete'
    seed            BIGINT NOT NULL,
    turns           INTEGER NOT NULL,
    replicates      INTEGER NOT NULL,
    max_tokens      INTEGER NOT NULL,          -- max new tokens per turn
    config          JSON NOT NULL,             -- resolved settings, topics and model specs (no secrets)
    command         VARCHAR,                   -- the command line that continues this run
    arena_version   VARCHAR NOT NULL
);

CREATE TABLE topics (
    run_id          VARCHAR NOT NULL,
    topic_id        VARCHAR NOT NULL,
    motion          VARCHAR NOT NULL,
    category        VARCHAR,
    tags            VARCHAR[],
    PRIMARY KEY (run_id, topic_id)
);

CREATE TABLE models (
    run_id          VARCHAR NOT NULL,
    role            VARCHAR NOT NULL,          -- 'contestant' | 'judge'
    name            VARCHAR NOT NULL,          -- the name used everywhere else (debates.for_model, ...)
    backend         VARCHAR NOT NULL,
    model           VARCHAR,                   -- the backend's own model id, when it has one
    params          JSON NOT NULL,             -- generation settings
    spec            JSON NOT NULL,             -- the whole config entry (env var names, never keys)
    PRIMARY KEY (run_id, role, name)
);

CREATE TABLE debates (
    debate_id       VARCHAR PRIMARY KEY,       -- hash of (run, topic, for model, against model, replicate)
    run_id          VARCHAR NOT NULL,
    topic_id        VARCHAR NOT NULL,
    for_model       VARCHAR NOT NULL,
    against_model   VARCHAR NOT NULL,
    replicate       INTEGER NOT NULL,
    turns_planned   INTEGER NOT NULL,
    status          VARCHAR NOT NULL,          -- 'pending' | 'running' | 'judging' | 'done' | 'failed'
    winner          VARCHAR,                   -- majority of valid verdicts: 'FOR' | 'AGAINST' | 'TIE'; NULL if none valid
    error           VARCHAR,                   -- why it failed, when status = 'failed'
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

CREATE TABLE turns (
    debate_id       VARCHAR NOT NULL,
    turn_index      INTEGER NOT NULL,          -- 1-based; FOR speaks at odd indices
    side            VARCHAR NOT NULL,          -- 'FOR' | 'AGAINST'
    role            VARCHAR NOT NULL,          -- 'opening' | 'rebuttal' | 'closing'
    model           VARCHAR NOT NULL,
    text            VARCHAR NOT NULL,          -- what the opponent and the judges saw (think blocks removed)
    raw_text        VARCHAR NOT NULL,          -- what the model returned
    reasoning       VARCHAR,                   -- reasoning returned beside the text, or the removed think blocks
    prompt_tokens   INTEGER,
    completion_tokens INTEGER,
    cost_usd        DOUBLE,
    latency_s       DOUBLE,
    finish_reason   VARCHAR,
    call_id         VARCHAR NOT NULL,          -- the successful call in `calls`
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (debate_id, turn_index)
);

CREATE TABLE verdicts (
    debate_id       VARCHAR NOT NULL,
    judge           VARCHAR NOT NULL,
    winner          VARCHAR,                   -- 'FOR' | 'AGAINST' | 'TIE'; NULL when not valid
    rationale       VARCHAR,
    valid           BOOLEAN NOT NULL,
    repaired        BOOLEAN NOT NULL,          -- a repair request was needed
    raw_text        VARCHAR NOT NULL,          -- the judge's last reply
    prob_for        DOUBLE,                    -- P(FOR) for logprob judges
    prompt_tokens   INTEGER,
    completion_tokens INTEGER,
    cost_usd        DOUBLE,
    latency_s       DOUBLE,
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (debate_id, judge)
);

CREATE TABLE calls (
    call_id         VARCHAR PRIMARY KEY,       -- hash of (request_hash, debate, purpose, attempt)
    request_hash    VARCHAR NOT NULL,          -- hash of the canonical request (model, messages, params)
    attempt         INTEGER NOT NULL,          -- 1 for the first try
    run_id          VARCHAR NOT NULL,
    debate_id       VARCHAR,
    purpose         VARCHAR NOT NULL,          -- 'turn' | 'judge' | 'judge_repair'
    model           VARCHAR NOT NULL,          -- config name of the model called
    prompt_tokens   INTEGER,
    completion_tokens INTEGER,
    cost_usd        DOUBLE,
    latency_s       DOUBLE,
    finish_reason   VARCHAR,
    error           VARCHAR,                   -- NULL on success
    error_kind      VARCHAR,                   -- 'rate_limit' | 'server' | 'timeout' | 'malformed' | 'bad_request' | ...
    retryable       BOOLEAN,
    started_at      TIMESTAMP NOT NULL
);
