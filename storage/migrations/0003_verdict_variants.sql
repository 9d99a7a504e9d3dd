-- 0003: how a judge was shown a debate, and whether its verdict counts, as columns of `verdicts`
-- (docs/schema.md), instead of a `:swapped` suffix on the judge's name that readers parsed back.
--
--   variant  'sides'  speakers labelled FOR and AGAINST
--            'for_a'  neutral labels, FOR called Debater A
--            'for_b'  neutral labels, FOR called Debater B
--            'both'   neutral labels in both orders, the two readings combined into one verdict
--   counts   whether the verdict counts towards debates.winner: one counting row per judge and
--            debate
--
-- The key becomes (debate_id, judge, variant). DuckDB cannot change a primary key in place, so
-- the table is rebuilt: created under another name, filled, the old one dropped, the new one
-- renamed (all in the migration's one transaction).
--
-- Rows written before: `X:swapped` (a swap-check judge's second verdict) becomes judge X, variant
-- 'for_b', not counting. A row of judge X is 'for_a' when X was a swap-check judge in its debate's
-- run (the run's `models.spec` says so, or the run has `X:swapped` rows: a judge's swap_check
-- cannot change within a run), else 'sides'; both count, as they did. The `pairs` view (0002)
-- reads debates.winner, never verdicts, so it stays as it is.

CREATE TABLE verdicts_0003 (
    debate_id       VARCHAR NOT NULL,
    judge           VARCHAR NOT NULL,          -- the judge's name in models.yaml
    variant         VARCHAR NOT NULL,          -- 'sides' | 'for_a' | 'for_b' | 'both'
    counts          BOOLEAN NOT NULL,          -- counts towards debates.winner (one per judge and debate)
    winner          VARCHAR,                   -- 'FOR' | 'AGAINST' | 'TIE'; NULL when not valid
    rationale       VARCHAR,
    valid           BOOLEAN NOT NULL,
    repaired        BOOLEAN NOT NULL,          -- a repair request was needed
    raw_text        VARCHAR NOT NULL,          -- the judge's last reply ('' for a combined 'both' row)
    prob_for        DOUBLE,                    -- P(FOR) for logprob judges ('both': the mean of the two)
    prompt_tokens   INTEGER,                   -- NULL on 'both' rows: their calls are the two readings'
    completion_tokens INTEGER,
    cost_usd        DOUBLE,
    latency_s       DOUBLE,
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (debate_id, judge, variant)
);

INSERT INTO verdicts_0003
WITH swap_check_judges AS (
    SELECT DISTINCT d.run_id, left(v.judge, length(v.judge) - length(':swapped')) AS judge
    FROM verdicts v JOIN debates d ON d.debate_id = v.debate_id
    WHERE ends_with(v.judge, ':swapped')
    UNION
    SELECT run_id, name FROM models WHERE role = 'judge' AND spec->>'$.swap_check' = 'true'
)
SELECT v.debate_id,
       CASE WHEN ends_with(v.judge, ':swapped')
            THEN left(v.judge, length(v.judge) - length(':swapped')) ELSE v.judge END,
       CASE WHEN ends_with(v.judge, ':swapped') THEN 'for_b'
            WHEN s.judge IS NOT NULL THEN 'for_a'
            ELSE 'sides' END,
       NOT ends_with(v.judge, ':swapped'),
       v.winner, v.rationale, v.valid, v.repaired, v.raw_text, v.prob_for, v.prompt_tokens,
       v.completion_tokens, v.cost_usd, v.latency_s, v.created_at
FROM verdicts v
LEFT JOIN debates d ON d.debate_id = v.debate_id
LEFT JOIN swap_check_judges s ON s.run_id = d.run_id AND s.judge = v.judge;

DROP TABLE verdicts;

ALTER TABLE verdicts_0003 RENAME TO verdicts;
