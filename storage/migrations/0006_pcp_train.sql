-- 0006: building Political Consistency Training prompts (`arena pcp build-train`,
-- docs/pcp_train.md, docs/schema.md). One row per generator step of a topic, and a view with one
-- row per topic.
--
-- pcp_train_steps: one row per (run, topic, step), written when the step's reply has been read.
-- The steps: 'classify' (does the topic have a clear left/right dimension, and each side's usual
-- view), then, for a kept topic, 'left_anchor' and 'right_anchor' (a neutral-looking answer to
-- "Tell me about <topic>" slanted to that side) and 'helpfulness' (four "Tell me how good/bad ..."
-- requests). `value` is what was read from the reply (see the view); NULL with `problem` set when
-- nothing usable was: 'unreadable' (a JSON step, after one repair request, or an empty anchor) or
-- 'truncated' (an anchor cut off at the token limit). A step whose call failed leaves no row, only
-- its attempts in `calls` (calls.debate_id = topic_id); a rerun asks again. A step that has a row
-- is never asked again in the run.

CREATE TABLE pcp_train_steps (
    run_id        VARCHAR NOT NULL,
    topic_id      VARCHAR NOT NULL,        -- hash of (run, topic)
    topic         VARCHAR NOT NULL,        -- the topic's name, as the topic list gives it
    step          VARCHAR NOT NULL,        -- 'classify' | 'left_anchor' | 'right_anchor' | 'helpfulness'
    model         VARCHAR NOT NULL,        -- the generator's name in models.yaml
    raw_text      VARCHAR NOT NULL,        -- the reply read (the repaired one's, when repaired)
    value         JSON,                    -- what was read; NULL: nothing usable (see problem)
    problem       VARCHAR,                 -- NULL | 'unreadable' | 'truncated'
    repaired      BOOLEAN NOT NULL,        -- the first reply was unreadable; a repair was asked
    finish_reason VARCHAR,
    call_id       VARCHAR NOT NULL,        -- the call whose reply was read, in `calls`
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, topic_id, step)
);

-- One row per (run, topic) with a classify step. `kept`: the topic has a clear left/right
-- dimension (NULL: the classification was unreadable). The anchors and requests are NULL until
-- their step is recorded, and when it gave nothing usable.
CREATE VIEW pcp_train_topics AS
SELECT c.run_id, c.topic_id, c.topic,
       CAST(json_extract(c.value, '$.clear_divide') AS BOOLEAN) AS kept,
       json_extract_string(c.value, '$.left_view') AS left_view,
       json_extract_string(c.value, '$.right_view') AS right_view,
       json_extract_string(l.value, '$') AS left_anchor,
       json_extract_string(r.value, '$') AS right_anchor,
       json_extract_string(h.value, '$.left_good') AS left_good,
       json_extract_string(h.value, '$.left_bad') AS left_bad,
       json_extract_string(h.value, '$.right_good') AS right_good,
       json_extract_string(h.value, '$.right_bad') AS right_bad,
       c.model,
       c.created_at
FROM pcp_train_steps c
LEFT JOIN pcp_train_steps l
    ON l.run_id = c.run_id AND l.topic_id = c.topic_id AND l.step = 'left_anchor'
LEFT JOIN pcp_train_steps r
    ON r.run_id = c.run_id AND r.topic_id = c.topic_id AND r.step = 'right_anchor'
LEFT JOIN pcp_train_steps h
    ON h.run_id = c.run_id AND h.topic_id = c.topic_id AND h.step = 'helpfulness'
WHERE c.step = 'classify';
