"""The debate protocol: order, roles, prompt layout (prefix property), what judges see."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arena.core.text import strip_thinking
from arena.protocol.debate import Transcript, role_of, side_of, turns_of
from arena.protocol.transcript import split_transcript


def test_for_opens_and_sides_alternate() -> None:
    assert [side_of(i) for i in range(1, 11)] == ["FOR", "AGAINST"] * 5
    assert turns_of("FOR", 10) == [1, 3, 5, 7, 9]
    assert turns_of("AGAINST", 10) == [2, 4, 6, 8, 10]


def test_roles_by_position() -> None:
    roles = [role_of(i, 10) for i in range(1, 11)]
    assert roles[:2] == ["opening", "opening"]
    assert roles[2:8] == ["rebuttal"] * 6
    assert roles[8:] == ["closing", "closing"]
    assert [role_of(i, 2) for i in (1, 2)] == ["opening", "opening"]


def _play(turns: int) -> tuple[Transcript, dict[int, list[tuple[str, str]]]]:
    transcript = Transcript("This house would test prompts.", turns, 256)
    prompts: dict[int, list[tuple[str, str]]] = {}
    for index in range(1, turns + 1):
        prompts[index] = [(m.role, m.content) for m in transcript.prompt_for(index)]
        transcript.add(index, f"Argument number {index} from {side_of(index)}.")
    return transcript, prompts


@given(st.integers(min_value=2, max_value=14))
def test_each_prompt_is_a_prefix_of_the_same_sides_next(turns: int) -> None:
    transcript, prompts = _play(turns)
    for index in range(1, turns - 1):
        earlier, later = prompts[index], prompts[index + 2]
        assert later[: len(earlier)] == earlier
        # and the reply to the earlier prompt follows it, as the assistant's message
        assert later[len(earlier)] == ("assistant", transcript.texts[index - 1])
        rendered_earlier = "".join(c for _, c in earlier)
        assert "".join(c for _, c in later).startswith(rendered_earlier)


def test_speaker_sees_opponents_latest_turn_and_its_task() -> None:
    _, prompts = _play(4)
    last = prompts[4][-1][1]
    assert "Argument number 3 from FOR." in last
    assert "Turn 4 of 4" in last and "closing" in last
    assert "AGAINST" in prompts[4][0][1]  # the system prompt names the side


def test_judge_sees_sides_not_models() -> None:
    transcript, _ = _play(4)
    messages = transcript.judge_messages()
    text = "\n".join(m.content for m in messages)
    assert "This house would test prompts." in text
    parsed = split_transcript(messages[-1].content)
    assert [(i, side) for i, side, _ in parsed] == [
        (1, "FOR"),
        (2, "AGAINST"),
        (3, "FOR"),
        (4, "AGAINST"),
    ]
    assert parsed[2][2] == "Argument number 3 from FOR."


def test_turns_must_come_in_order() -> None:
    transcript = Transcript("m", 4, 100)
    with pytest.raises(ValueError):
        transcript.prompt_for(2)


@pytest.mark.parametrize(
    ("raw", "clean", "thought"),
    [
        ("<think>secret plan</think>Public argument.", "Public argument.", "secret plan"),
        ("A <think>x</think>B<THINK>y</THINK> C", "A B C", "x\n\ny"),
        ("Opening words <think>ran out of tokens", "Opening words", "ran out of tokens"),
        ("reasoning without opening tag</think>The answer.", "The answer.", None),
        ("No thinking here.", "No thinking here.", None),
    ],
)
def test_strip_thinking(raw: str, clean: str, thought: str | None) -> None:
    text, thinking = strip_thinking(raw)
    assert text == clean
    if thought is not None:
        assert thinking == thought


def test_every_generation_param_reaches_the_backend() -> None:
    """Each setting a models.yaml `params` block can set is carried into the request a turn
    sends: a setting the schema accepts but the task drops would be stored with the run and
    silently not applied (no_repeat_ngram_size once was)."""
    import dataclasses

    from arena.backends.base import GenerateSettings, GenerationParams
    from arena.tasks.debate import generate_settings

    values = {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 77,
        "seed": 5,
        "stop": ["END"],
        "repetition_penalty": 1.2,
        "no_repeat_ngram_size": 4,
    }
    assert set(values) == set(GenerationParams.model_fields), "add the new field here"
    settings = generate_settings(GenerationParams(**values), max_tokens=10, seed=0, replicate=0)
    sent = dataclasses.asdict(settings)
    for name, value in values.items():
        assert sent[name] == (tuple(value) if isinstance(value, list) else value), name
    assert set(GenerationParams.model_fields) <= {
        f.name for f in dataclasses.fields(GenerateSettings)
    }
