"""The runtime helpers that describe where a number was made."""

from __future__ import annotations

import torch

from dipscope.runtime import describe_device, device_in_words, machine


def test_a_recorded_device_in_words_names_bf16_and_threads() -> None:
    cpu = {"type": "cpu", "name": "Some CPU", "torch_threads": 1, "native_bf16": True}
    assert device_in_words(cpu) == "Some CPU (native bf16), 1 thread"
    assert device_in_words({**cpu, "native_bf16": False, "torch_threads": 2}) == "Some CPU (no native bf16), 2 threads"
    # a GPU or an older record without the flag says nothing about bf16; no name falls back to the type
    assert device_in_words({"type": "cuda", "name": "H200", "torch_threads": 2}) == "H200, 2 threads"
    assert device_in_words({"type": "cpu"}) == "cpu"
    assert device_in_words("cpu") == "cpu" and device_in_words(None) == "?"


def test_machine_is_this_cpu_in_the_same_words() -> None:
    words = device_in_words({**describe_device(torch.device("cpu")), "torch_threads": None})
    assert machine().startswith(words + ", ")
    assert machine().endswith(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
