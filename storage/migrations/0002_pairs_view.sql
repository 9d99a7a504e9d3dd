-- 0002: the `pairs` view, turn-level preference pairs by the PERSUADE rule (docs/schema.md).
-- Every turn of a debate its side won, paired with every turn of the same (topic, side, turn) from
-- a debate that side lost; majority verdicts (debates.winner), no filter, no cap, no split. Texts
-- equal once whitespace runs are collapsed are left out. `arena pairs` (pairing/pairs.py) derives
-- the same set with filters, caps, splits and prompts, and writes it out.

CREATE VIEW pairs AS
WITH judged AS (
    SELECT d.debate_id, d.run_id, d.topic_id, d.turns_planned AS turns, d.winner,
           tp.motion, r.max_tokens
    FROM debates d
    JOIN topics tp ON tp.run_id = d.run_id AND tp.topic_id = d.topic_id
    JOIN runs r ON r.run_id = d.run_id
    WHERE d.status = 'done' AND d.winner IN ('FOR', 'AGAINST')
),
spoken AS (
    SELECT j.debate_id, j.run_id, j.topic_id, j.turns, j.motion, j.max_tokens,
           t.side, t.turn_index, t.role, t.model, t.text, t.side = j.winner AS won,
           -- whitespace runs (space, tab, newline, CR, form feed) collapsed, ends trimmed
           hash(trim(regexp_replace(t.text, '[ \t\n\r\f]{2,}|[\t\n\r\f]', ' ', 'g'))) AS norm_hash
    FROM turns t JOIN judged j ON j.debate_id = t.debate_id
)
SELECT w.topic_id, w.side, w.turn_index, w.role, w.motion, w.turns, w.max_tokens,
       w.model AS chosen_model, l.model AS rejected_model,
       w.debate_id AS chosen_debate_id, l.debate_id AS rejected_debate_id,
       w.run_id AS chosen_run_id, l.run_id AS rejected_run_id,
       w.text AS chosen_text, l.text AS rejected_text
FROM spoken w
JOIN spoken l
  ON l.topic_id = w.topic_id AND l.side = w.side AND l.turn_index = w.turn_index
 AND l.motion = w.motion AND l.turns = w.turns AND l.max_tokens = w.max_tokens
WHERE w.won AND NOT l.won
  -- equal hashes are compared in full: the hash only spares comparing the others
  AND (w.norm_hash <> l.norm_hash
       OR trim(regexp_replace(w.text, '[ \t\n\r\f]{2,}|[\t\n\r\f]', ' ', 'g'))
          <> trim(regexp_replace(l.text, '[ \t\n\r\f]{2,}|[\t\n\r\f]', ' ', 'g')));
