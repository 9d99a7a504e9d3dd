"""`dtype: auto` of the local backend: bfloat16 only where it is computed natively.

Needs no torch: the CPU's flags are read from `/proc/cpuinfo`'s text, given here."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena.backends import local_model
from arena.backends.local import LocalSpec
from arena.backends.local_model import cpu_computes_bf16, resolve_dtype

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n"
SAPPHIRE = "flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile\n"
GRAVITON = "Features\t: fp asimd evtstrm aes sha1 sha2 crc32 atomics bf16 i8mm\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"), [(AVX2, False), (SAPPHIRE, True), (GRAVITON, True), ("", False)]
)
def test_native_bfloat16_is_read_from_the_cpu_flags(cpuinfo: str, native: bool) -> None:
    assert cpu_computes_bf16(cpuinfo) is native


def test_auto_picks_float32_on_a_cpu_without_bfloat16(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(AVX2)
    monkeypatch.setattr(local_model, "CPUINFO", info)
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"  # asked for: kept
    assert resolve_dtype("auto", "cuda") == "bfloat16"
    spec = LocalSpec(name="m", backend="local", device="cpu")
    assert spec.model_id() == "local/smollm2-135m-instruct@float32"
    info.write_text(SAPPHIRE)
    assert spec.model_id() == "local/smollm2-135m-instruct@bfloat16"
    monkeypatch.setattr(local_model, "CPUINFO", tmp_path / "absent")
    assert resolve_dtype("auto", "cpu") == "float32"
