"""Every core module compiles for the ESP32 (xtensawin) and the ESP32-C3 (rv32imc)."""

import os

import pytest

from tonebridge.boards.mpycross import BuildError, compile_file, compile_tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "shared", "tonecore")
CORE_MODULES = sorted(n for n in os.listdir(CORE) if n.endswith(".py"))


@pytest.mark.parametrize("march", ["xtensawin", "rv32imc"])
def test_every_core_module_compiles(tmp_path, march):
    built = compile_tree(CORE, str(tmp_path), march)
    assert sorted(os.path.basename(src) for src, _ in built) == CORE_MODULES
    for _, target in built:
        with open(target, "rb") as f:
            assert f.read(1) == b"M"  # the .mpy magic


def test_a_syntax_error_is_reported(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    with pytest.raises(BuildError) as info:
        compile_file(str(bad), str(tmp_path / "bad.mpy"), "xtensawin")
    assert "bad.py" in str(info.value)
