"""Boards, their manifests, the firmware build and deploy (tonebridge.boards), with real tools.

The board files are loaded by CPython and by the MicroPython unix port; builds run the
real mpy-cross for each board's architecture; the manifests are read by
tonebridge.boards.manifests, with the semantics of MicroPython's tools/manifestfile.py
(checked on their own below); deploys run against a fake `mpremote` on PATH (a real
process that records its argv), and the code a deploy sends to the board runs under
MicroPython.
"""

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tonebridge import __version__, paths
from tonebridge.boards import FirmwareError
from tonebridge.boards import deploy as deploy_module
from tonebridge.boards.build import MAIN_PY, build
from tonebridge.boards.cas import CA_ROOTS, refresh_cas
from tonebridge.boards.deploy import BOARD_RECORD, deploy_command, parse_probe
from tonebridge.boards import facts
from tonebridge.boards.facts import FIELDS, load_board
from tonebridge.boards.manifests import ManifestError, read_manifest
from tonebridge.cli import cli
from tonecore import linkprofile, records
from tonecore.errors import UsageError
from tonecore.records import PLATFORMS, SIZES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARDS = ("esp32_generic", "esp32s3", "esp32c3", "unix_sim")
VENV_BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(VENV_BIN, "micropython")

# .mpy header: b"M", version, feature byte (native arch in bits 2..7), small-int bits.
MPY_ARCH_CODES = {None: 0, "xtensawin": 10, "rv32imc": 11}
CORE_MODULES = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "shared", "tonecore")) if n.endswith(".py"))
SIMBOARD_MODULES = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "firmware", "simboard")) if n.endswith(".py"))


def run_micropython(code, path, cwd=None):
    """Run `code` under the MicroPython unix port with `path` on MICROPYPATH; stdout."""
    env = dict(os.environ, MICROPYPATH=".frozen:" + path)
    done = subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_json(value):
    """What a value looks like after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(value))


@pytest.fixture
def source_tree(tmp_path):
    """A source tree in tmp_path/src: the real boards/, shared/, firmware/manifest.py and
    firmware/simboard/, with a small stand-in for firmware/pedal/: {__init__,main,fast}.py,
    fast.py has native code."""
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "boards"), src / "boards")
    shutil.copytree(os.path.join(ROOT, "shared"), src / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "firmware", "simboard"), src / "firmware" / "simboard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "firmware", "manifest.py"), src / "firmware" / "manifest.py")
    pedal = src / "firmware" / "pedal"
    pedal.mkdir()
    (pedal / "__init__.py").write_text("")
    (pedal / "main.py").write_text("import boardinfo\n\ndef boot():\n    print('boot', boardinfo.NAME)\n")
    (pedal / "fast.py").write_text("import micropython\n\n@micropython.native\ndef double(x):\n    return x * 2\n")
    return str(src)


def drop_native_code_for_bytecode_boards(board, root):
    """unix_sim builds bytecode only (no -march): native code cannot compile for it."""
    fast = os.path.join(root, "firmware", "pedal", "fast.py")
    if load_board(board).arch is None and os.path.exists(fast):
        os.remove(fast)


def build_for(board, tmp_path, root, **kwargs):
    drop_native_code_for_bytecode_boards(board, root)
    return build(board, str(tmp_path / "build" / board), root=root, **kwargs)


def listing(out):
    found = []
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if d != "stage"]
        found += [os.path.relpath(os.path.join(root, name), out).replace(os.sep, "/") for name in files]
    return sorted(found)


# --- board.py ------------------------------------------------------------------------


@pytest.mark.parametrize("board", BOARDS)
def test_every_board_loads_with_the_same_values_on_cpython_and_micropython(tmp_path, board):
    facts = load_board(board).facts
    assert set(facts) == set(FIELDS)

    # A plain CPython import of the file, as a module.
    import importlib.util

    spec = importlib.util.spec_from_file_location("boardinfo", os.path.join(ROOT, "boards", board, "board.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {name: getattr(module, name) for name in FIELDS} == facts

    # The same file as `boardinfo` under MicroPython.
    shutil.copy(os.path.join(ROOT, "boards", board, "board.py"), tmp_path / "boardinfo.py")
    names = sorted(FIELDS)
    out = run_micropython("import json, boardinfo\nprint(json.dumps([getattr(boardinfo, n) for n in %r]))" % names,
                          str(tmp_path))
    assert json.loads(out) == [as_json(facts[name]) for name in names]


EXPECTED = {
    "esp32_generic": dict(ARCH="xtensawin", FLASH_BYTES=4 << 20, FS_BYTES=2 << 20, FS_ROOT="/", HEAP_BUDGET=128 * 1024,
                          PSRAM_BYTES=0, SERIAL="uart"),
    "esp32s3": dict(ARCH="xtensawin", FLASH_BYTES=8 << 20, FS_BYTES=6 << 20, FS_ROOT="/", HEAP_BUDGET=2 << 20,
                    PSRAM_BYTES=8 << 20, SERIAL="usb-cdc"),
    "esp32c3": dict(ARCH="rv32imc", FLASH_BYTES=4 << 20, FS_BYTES=2 << 20, FS_ROOT="/", PSRAM_BYTES=0,
                    SERIAL="usb-serial-jtag"),
    "unix_sim": dict(ARCH=None, FS_BYTES=16 << 20, FS_ROOT="/flash", HEAP_BUDGET=128 * 1024, SERIAL="pty",
                     USB_IDS=(), PINS={}, CA_FILES=(), MAX_MODEL_BYTES=32 << 20),
}


@pytest.mark.parametrize("board", BOARDS)
def test_board_facts(board):
    facts = load_board(board).facts
    for name, value in EXPECTED[board].items():
        assert facts[name] == value, name
    assert facts["BLOCK_SIZE"] == 4096 and facts["NAME"] == board
    assert facts["FS_BYTES"] <= facts["FLASH_BYTES"] and facts["HEAP_BUDGET"] > 0


def test_what_each_board_can_run():
    generic, s3, c3, sim = (load_board(name) for name in BOARDS)
    assert generic.can_run("nam", "feather") and generic.can_run("nam", "nano") and generic.can_run("ir", "custom")
    assert not generic.can_run("nam", "standard") and not generic.can_run("aida-x", "standard")
    assert all(s3.can_run("nam", size) for size in SIZES) and s3.can_run("aida-x", "custom")
    assert not s3.can_run("proteus", "standard")
    assert c3.can_run("nam", "nano") and not c3.can_run("nam", "feather") and c3.can_run("ir", "standard")
    assert all(sim.can_run(platform, "standard") for platform in PLATFORMS)


def test_usb_ids_of_the_real_boards():
    ids = {(vid, pid) for board in BOARDS for vid, pid, _ in load_board(board).usb_ids}
    assert ids == {(0x10C4, 0xEA60), (0x303A, 0x1001), (0x1A86, 0x7523), (0x1A86, 0x55D4)}
    assert (0x303A, 0x1001) in {(v, p) for v, p, _ in load_board("esp32s3").usb_ids}
    assert (0x303A, 0x1001) in {(v, p) for v, p, _ in load_board("esp32c3").usb_ids}


def test_a_broken_board_file_is_named(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "board.py").write_text("NAME = 'bad'\nimport os\n")
    with pytest.raises(FirmwareError) as info:
        load_board("bad", str(tmp_path))
    assert "board.py" in str(info.value) and "ImportError" in str(info.value)
    (tmp_path / "bad" / "board.py").write_text("NAME = 'bad'\n")
    with pytest.raises(FirmwareError, match="TITLE is missing"):
        load_board("bad", str(tmp_path))
    with pytest.raises(UsageError, match="unknown board 'nope'"):
        load_board("nope")


def board_file(boards_dir, name, **changes):
    """boards_dir/name/board.py: esp32_generic's facts with `changes`; returns boards_dir."""
    with open(os.path.join(ROOT, "boards", "esp32_generic", "board.py")) as f:
        text = f.read().replace('NAME = "esp32_generic"', "NAME = %r" % name)
    text += "".join("\n%s = %r\n" % item for item in changes.items())
    os.makedirs(os.path.join(boards_dir, name), exist_ok=True)
    with open(os.path.join(boards_dir, name, "board.py"), "w") as f:
        f.write(text)
    return boards_dir


def test_every_board_serial_is_a_console_kind_with_link_settings():
    # The validator's list is the link profiles' own: a board passes only with a SERIAL
    # tonecore.linkprofile has settings for.
    for name in BOARDS:
        assert load_board(name).serial in linkprofile.KINDS
        assert linkprofile.profile(load_board(name).serial)
    valid, _ = FIELDS["SERIAL"]
    assert [kind for kind in linkprofile.KINDS if valid(kind)] == list(linkprofile.KINDS)
    # One list each, not copies: the core's own objects.
    assert facts.KINDS is linkprofile.KINDS and facts.PLATFORMS is records.PLATFORMS and facts.SIZES is records.SIZES


@pytest.mark.parametrize("serial", ["usb", "UART", "cdc", None])
def test_a_board_whose_serial_has_no_link_profile_is_refused_before_a_build(tmp_path, serial):
    boards_dir = board_file(str(tmp_path / "boards"), "odd", SERIAL=serial)
    with pytest.raises(FirmwareError) as caught:
        load_board("odd", boards_dir)
    message = str(caught.value)
    assert "SERIAL has an invalid value: %r" % serial in message
    assert "uart, usb-cdc, usb-serial-jtag, pty" in message

    # At build time too, before anything is compiled.
    with pytest.raises(FirmwareError, match="SERIAL has an invalid value"):
        build("odd", str(tmp_path / "out"), root=str(tmp_path))
    assert not os.path.exists(tmp_path / "out")


def test_formats_are_checked_against_the_cores_platforms_and_sizes(tmp_path):
    boards_dir = board_file(str(tmp_path), "odd", FORMATS={"nam": ("huge",)})
    with pytest.raises(FirmwareError, match="FORMATS has an invalid value"):
        load_board("odd", boards_dir)
    board_file(str(tmp_path), "odd", FORMATS={"synth": "*"})
    with pytest.raises(FirmwareError, match="FORMATS has an invalid value"):
        load_board("odd", boards_dir)
    board_file(str(tmp_path), "odd", FORMATS={platform: tuple(SIZES) for platform in PLATFORMS})
    assert load_board("odd", boards_dir).can_run(PLATFORMS[-1], SIZES[-1])


# --- CA roots ------------------------------------------------------------------------


@pytest.mark.parametrize("board", ["esp32_generic", "esp32s3", "esp32c3"])
def test_the_ca_files_are_the_four_roots(board):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.x509.oid import NameOID

    info = load_board(board)
    assert sorted(info.ca_files) == sorted(CA_ROOTS)
    for name in info.ca_files:
        with open(os.path.join(info.directory, "ca", name), "rb") as f:
            der = f.read()
        cert = x509.load_der_x509_certificate(der)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CA_ROOTS[name]
        assert cert.issuer == cert.subject  # a self-signed root
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=der)  # OpenSSL takes it as a trust anchor
        assert context.cert_store_stats()["x509_ca"] == 1


def test_refresh_cas_reproduces_the_committed_files(tmp_path):
    boards_dir = tmp_path / "boards"
    shutil.copytree(os.path.join(ROOT, "boards"), boards_dir, ignore=shutil.ignore_patterns("ca"))
    written = refresh_cas(str(boards_dir))
    assert len(written) == 12
    for path in written:
        rel = os.path.relpath(path, boards_dir)
        with open(path, "rb") as new, open(os.path.join(ROOT, "boards", rel), "rb") as committed:
            assert new.read() == committed.read(), rel


def test_refresh_cas_says_which_root_a_bundle_lacks(tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(ssl.DER_cert_to_PEM_cert(open(os.path.join(ROOT, "boards", "esp32s3", "ca",
                                                                  "isrg-root-x1.der"), "rb").read()))
    boards_dir = tmp_path / "boards"
    shutil.copytree(os.path.join(ROOT, "boards"), boards_dir)
    with pytest.raises(FirmwareError, match="no ISRG Root X2 certificate"):
        refresh_cas(str(boards_dir), str(bundle))


# --- build ---------------------------------------------------------------------------


@pytest.mark.parametrize("board", BOARDS)
def test_build_lays_out_the_flash_with_the_board_architecture(tmp_path, source_tree, board):
    info = load_board(board)
    result = build_for(board, tmp_path, source_tree)
    out = result["out"]
    pedal = ["__init__", "main"] + (["fast"] if info.arch else [])
    expected = (
        ["lib/tonecore/%s.mpy" % name for name in CORE_MODULES]
        + ["lib/pedal/%s.mpy" % name for name in pedal]
        + ["lib/microdot/__init__.mpy", "lib/microdot/microdot.mpy", "lib/microdot/helpers.mpy", "lib/boardinfo.mpy"]
        + ["ca/" + name for name in info.ca_files]
        + (["lib/simboard/%s.mpy" % name for name in SIMBOARD_MODULES] if board == "unix_sim" else ["main.py"])
    )
    assert listing(out) == sorted(expected + ["BUILD.json"])
    assert sorted(result["files"]) == sorted(expected)
    assert result["board"] == board and result["arch"] == info.arch
    assert sorted(result["rebuilt"]) == sorted(expected)

    for rel, entry in result["files"].items():
        with open(os.path.join(out, rel), "rb") as f:
            data = f.read()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, rel
        if rel.endswith(".mpy"):
            assert data[0:2] == b"M\x06", rel
            assert data[2] >> 2 in (0, MPY_ARCH_CODES[info.arch]), rel  # bytecode, or native for this arch
    assert result["total_bytes"] == sum(entry["size"] for entry in result["files"].values())
    if info.arch:  # native code was compiled for the board's own architecture
        with open(os.path.join(out, "lib", "pedal", "fast.mpy"), "rb") as f:
            assert f.read(3)[2] >> 2 == MPY_ARCH_CODES[info.arch]
    if board != "unix_sim":
        with open(os.path.join(out, "main.py")) as f:
            assert f.read() == MAIN_PY == "import pedal.main\npedal.main.boot()\n"
    with open(os.path.join(out, "BUILD.json")) as f:
        record = json.load(f)
    assert record["files"] == result["files"] and record["tonebridge"] == __version__

    # Plain bytecode is portable: the board's boardinfo.mpy loads under the unix port.
    values = run_micropython("import boardinfo\nprint(boardinfo.NAME, boardinfo.FS_BYTES)", os.path.join(out, "lib"))
    assert values.split() == [board, str(info.fs_bytes)]


def test_the_simulator_build_runs_under_micropython(tmp_path, source_tree):
    out = build_for("unix_sim", tmp_path, source_tree)["out"]
    printed = run_micropython(
        "import microdot, tonecore, tonecore.client, pedal.main\nprint(microdot.Microdot.__name__)\n"
        "print(tonecore.__version__)\npedal.main.boot()",
        os.path.join(out, "lib"))
    # The firmware reads the one version string from the core it runs on.
    assert printed.split("\n")[:3] == ["Microdot", __version__, "boot unix_sim"]


def test_the_build_is_incremental(tmp_path, source_tree):
    first = build_for("esp32_generic", tmp_path, source_tree)
    assert len(first["rebuilt"]) == len(first["files"])
    assert build_for("esp32_generic", tmp_path, source_tree)["rebuilt"] == []

    with open(os.path.join(source_tree, "firmware", "pedal", "main.py"), "a") as f:
        f.write("VERSION = 2\n")
    assert build_for("esp32_generic", tmp_path, source_tree)["rebuilt"] == ["lib/pedal/main.mpy"]

    out = first["out"]
    with open(os.path.join(out, "lib", "tonecore", "auth.mpy"), "wb") as f:
        f.write(b"tampered")
    assert build_for("esp32_generic", tmp_path, source_tree)["rebuilt"] == ["lib/tonecore/auth.mpy"]

    os.remove(os.path.join(source_tree, "firmware", "pedal", "fast.py"))
    result = build_for("esp32_generic", tmp_path, source_tree)
    assert "lib/pedal/fast.mpy" not in result["files"] and not os.path.exists(os.path.join(out, "lib/pedal/fast.mpy"))


def test_a_build_needs_the_pedal_package(tmp_path, source_tree):
    shutil.rmtree(os.path.join(source_tree, "firmware", "pedal"))
    with pytest.raises(FirmwareError, match="package 'pedal' has no Python modules"):
        build("esp32_generic", str(tmp_path / "out"), root=source_tree)
    shutil.rmtree(os.path.join(source_tree, "firmware"))
    with pytest.raises(FirmwareError, match="cannot read the manifest .*/firmware/manifest.py"):
        build("esp32_generic", str(tmp_path / "out"), root=source_tree)


def test_a_syntax_error_in_the_firmware_is_one_error(tmp_path, source_tree):
    with open(os.path.join(source_tree, "firmware", "pedal", "main.py"), "w") as f:
        f.write("def boot(:\n")
    with pytest.raises(FirmwareError, match="main.py"):
        build_for("esp32c3", tmp_path, source_tree)


def test_the_build_command(tmp_path, source_tree, monkeypatch):
    monkeypatch.setattr(paths, "ROOT", source_tree)
    out = str(tmp_path / "out")
    result = CliRunner().invoke(cli, ["firmware", "build", "--board", "esp32c3", "--out", out, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["board"] == "esp32c3" and record["arch"] == "rv32imc" and "lib/boardinfo.mpy" in record["files"]
    result = CliRunner().invoke(cli, ["firmware", "build", "--board", "esp32c3", "--out", out])
    assert result.exit_code == 0 and "all up to date" in result.stdout

    result = CliRunner().invoke(cli, ["firmware", "build", "--board", "esp99"])
    assert result.exit_code == 2 and result.stderr.startswith("tonebridge: error: unknown board 'esp99'")
    assert result.stderr.count("\n") == 1


def test_the_boards_command():
    result = CliRunner().invoke(cli, ["firmware", "boards", "--json"])
    assert result.exit_code == 0
    boards = {board["name"]: board for board in json.loads(result.stdout)}
    assert sorted(boards) == sorted(BOARDS)
    assert boards["esp32s3"]["formats"]["aida-x"] == "*" and boards["esp32c3"]["formats"]["nam"] == ["nano"]
    assert {"vid": 0x10C4, "pid": 0xEA60, "label": "Silicon Labs CP210x"} in boards["esp32_generic"]["usb_ids"]
    text = CliRunner().invoke(cli, ["firmware", "boards"]).stdout
    assert all(board in text for board in BOARDS) and "rv32imc" in text


# --- manifest.py ---------------------------------------------------------------------


@pytest.fixture
def fake_port(tmp_path):
    """The folders MicroPython's make names $(PORT_DIR) and $(MPY_DIR), with the esp32
    port's boards/manifest.py and extmod/asyncio (unix_sim takes only that), each
    freezing one module, portmod.py."""
    port = tmp_path / "port"
    for manifest in ("boards/manifest.py", "extmod/asyncio/manifest.py"):
        (port / manifest).parent.mkdir(parents=True, exist_ok=True)
        (port / manifest).write_text("module('portmod.py')\n")
        (port / manifest).parent.joinpath("portmod.py").write_text("X = 1\n")
    return {"PORT_DIR": str(port), "MPY_DIR": str(port)}


@pytest.mark.parametrize("board", BOARDS)
def test_a_freeze_and_a_build_take_the_same_files(source_tree, fake_port, board):
    # MicroPython's make reads boards/<board>/manifest.py with the port's variables and
    # no options: microdot and boardinfo.py then come from build/<board>/stage.
    drop_native_code_for_bytecode_boards(board, source_tree)
    result = build(board, os.path.join(source_tree, "build", board), root=source_tree)
    frozen = {entry.target: entry.source
              for entry in read_manifest(os.path.join(source_tree, "boards", board, "manifest.py"), fake_port)}
    pedal = ["__init__", "main"] + (["fast"] if board != "unix_sim" else [])
    simboard = ["simboard/%s.py" % name for name in SIMBOARD_MODULES] if board == "unix_sim" else []
    assert sorted(frozen) == sorted(
        ["portmod.py", "boardinfo.py", "microdot/__init__.py", "microdot/microdot.py", "microdot/helpers.py"]
        + ["tonecore/%s.py" % name for name in CORE_MODULES] + ["pedal/%s.py" % name for name in pedal] + simboard)
    with open(frozen["boardinfo.py"]) as staged, open(os.path.join(source_tree, "boards", board, "board.py")) as board_py:
        assert staged.read() == board_py.read()
    assert frozen["microdot/microdot.py"].startswith(os.path.join(source_tree, "build", board, "stage") + os.sep)

    # The build compiled exactly those files, less the port's own.
    compiled = sorted(rel[4:-4] + ".py" for rel in result["files"] if rel.startswith("lib/"))
    assert compiled == sorted(target for target in frozen if target != "portmod.py")


def test_the_manifest_asks_for_a_build_first(source_tree, fake_port):
    with pytest.raises(ManifestError, match="has no boardinfo.py: run `tonebridge firmware build --board esp32s3` first"):
        read_manifest(os.path.join(source_tree, "boards", "esp32s3", "manifest.py"), fake_port)


def test_the_port_manifests_are_left_to_micropythons_make(source_tree):
    # Without $(PORT_DIR) the port's include is skipped; the firmware is all there.
    build("esp32c3", os.path.join(source_tree, "build", "esp32c3"), root=source_tree)
    targets = [entry.target for entry in read_manifest(os.path.join(source_tree, "boards", "esp32c3"))]
    assert "portmod.py" not in targets and "pedal/main.py" in targets and "tonecore/link.py" in targets


def write_manifests(folder, files):
    """Write {relative path: text} under `folder`; returns folder."""
    for rel, text in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return folder


def test_manifest_paths_start_at_the_manifest_that_names_them(tmp_path):
    # manifestfile.py: a folder means its manifest.py; relative paths from the including
    # manifest's folder; base_path moves the package; files= lists a package's files.
    write_manifests(str(tmp_path), {
        "top/manifest.py": "include('../lib')\nmodule('solo.py')\n",
        "top/solo.py": "",
        "lib/manifest.py": "package('pkg')\npackage('other', files=('a.py', 'sub/b.py'), base_path='src')\n",
        "lib/pkg/__init__.py": "", "lib/pkg/deep/x.py": "", "lib/pkg/notes.txt": "",
        "lib/src/other/a.py": "", "lib/src/other/sub/b.py": "", "lib/src/other/c.py": "",
    })
    found = {entry.target: entry for entry in read_manifest(str(tmp_path / "top"))}
    assert sorted(found) == ["other/a.py", "other/sub/b.py", "pkg/__init__.py", "pkg/deep/x.py", "solo.py"]
    assert found["pkg/deep/x.py"].source == str(tmp_path / "lib" / "pkg" / "deep" / "x.py")
    assert found["other/sub/b.py"].source == str(tmp_path / "lib" / "src" / "other" / "sub" / "b.py")
    assert found["other/a.py"].manifest == str(tmp_path / "lib" / "manifest.py")


def test_manifest_options_come_from_the_include_with_defaults_and_none(tmp_path):
    write_manifests(str(tmp_path), {
        "manifest.py": "include('part', flavour='b')\ninclude('part', flavour='c')\n",
        "part/manifest.py": ("options.defaults(flavour='a', extra='e')\n"
                             "assert options.missing is None\n"
                             "module(options.flavour + options.extra + '.py')\n"),
        "part/be.py": "", "part/ce.py": "",
    })
    # Each manifest runs once, as in MicroPython: the second include is skipped.
    assert [entry.target for entry in read_manifest(str(tmp_path))] == ["be.py"]


def test_manifest_variables_and_failures(tmp_path):
    write_manifests(str(tmp_path), {
        "manifest.py": "include('$(LIB)/x')\ninclude('$(UNKNOWN)/y')\n",
        "lib/x/manifest.py": "module('m.py')\n", "lib/x/m.py": "",
        "broken/manifest.py": "include('inner')\n", "broken/inner/manifest.py": "module('gone.py')\n",
        "odd/manifest.py": "require('mip')\n",
        "port/manifest.py": "module('m.py', base_path='$(PORT_DIR)')\n",
    })
    assert [entry.target for entry in read_manifest(str(tmp_path), {"LIB": str(tmp_path / "lib")})] == ["m.py"]
    with pytest.raises(ManifestError) as caught:
        read_manifest(str(tmp_path / "broken"))
    # The chain of manifests, then what went wrong.
    assert str(caught.value) == "%s: %s: %s is missing" % (tmp_path / "broken" / "manifest.py",
                                                          tmp_path / "broken" / "inner" / "manifest.py",
                                                          tmp_path / "broken" / "inner" / "gone.py")
    with pytest.raises(ManifestError, match=r"require\(\) is not supported"):
        read_manifest(str(tmp_path / "odd"))
    with pytest.raises(ManifestError, match=r"only MicroPython's make knows \$\(PORT_DIR\)"):
        read_manifest(str(tmp_path / "port"))


# --- deploy --------------------------------------------------------------------------

FAKE_MPREMOTE = """\
#!%(python)s
# A stand-in for mpremote: records its argv; answers the record probe from $FAKE_BOARD_RECORD;
# fails with $FAKE_MPREMOTE_FAIL on stderr when that is set.
import json, os, sys
with open(os.environ["FAKE_MPREMOTE_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("FAKE_MPREMOTE_FAIL"):
    sys.stdout.write("")
    sys.stderr.write(os.environ["FAKE_MPREMOTE_FAIL"] + "\\n")
    sys.exit(1)
if "exec" in sys.argv and "<tonebridge-record>" in sys.argv[sys.argv.index("exec") + 1]:
    path = os.environ.get("FAKE_BOARD_RECORD")
    if path and os.path.exists(path):
        print("<tonebridge-record>")
        print(open(path).read())
        print("</tonebridge-record>")
    else:
        print("<tonebridge-record-none>")
"""


@pytest.fixture
def fake_mpremote(tmp_path):
    """PATH with a fake mpremote first; returns (env, read the logged argvs)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "mpremote"
    script.write_text(FAKE_MPREMOTE % {"python": sys.executable})
    script.chmod(0o755)
    log = tmp_path / "mpremote.log"
    env = {"PATH": str(bin_dir) + os.pathsep + os.environ.get("PATH", ""), "FAKE_MPREMOTE_LOG": str(log),
           "FAKE_BOARD_RECORD": str(tmp_path / "board-record.json"), "FAKE_MPREMOTE_FAIL": None}

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    return env, calls, str(script)


def deploy_cli(env, *args):
    """`tonebridge firmware deploy ARGS` with `env` (its PATH reaches subprocesses too)."""
    return CliRunner().invoke(cli, ["firmware", "deploy"] + list(args), env=env)


def copied_files(argv, out):
    """{board path: local file} for every `fs cp -f SRC... :DIR/` in a deploy argv."""
    copies = {}
    for part in _split_plus(argv):
        if part[:3] == ["fs", "cp", "-f"]:
            *sources, target = part[3:]
            for source in sources:
                name = os.path.basename(source)
                copies[target[1:] + (name if target.endswith("/") else "")] = source
    return copies


def _split_plus(argv):
    parts, current = [], []
    for arg in argv:
        if arg == "+":
            parts.append(current)
            current = []
        else:
            current.append(arg)
    return parts + [current]


def test_a_first_deploy_copies_everything_then_resets(tmp_path, source_tree, fake_mpremote):
    env, calls, script = fake_mpremote
    out = build_for("esp32_generic", tmp_path, source_tree)["out"]
    result = deploy_cli(env, "--board", "esp32_generic", "--port", "/dev/ttyUSB0", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Deployed esp32_generic to /dev/ttyUSB0" in result.stdout

    probe, copy = calls()
    assert probe[:3] == ["connect", "/dev/ttyUSB0", "+"] and probe[3] == "exec"
    assert copy[:2] == ["connect", "/dev/ttyUSB0"]
    parts = _split_plus(copy)
    assert parts[1][0] == "exec" and parts[-1] == ["reset"]
    with open(os.path.join(out, "BUILD.json")) as f:
        record = json.load(f)
    copies = copied_files(copy, out)
    assert sorted(copies) == sorted(["/" + rel for rel in record["files"]] + ["/" + BOARD_RECORD])
    for rel in record["files"]:
        assert copies["/" + rel] == os.path.join(out, *rel.split("/"))
    with open(copies["/" + BOARD_RECORD]) as f:
        left_on_board = json.load(f)
    assert left_on_board["files"] == record["files"] and "sources" not in left_on_board
    # The record goes last but one: an interrupted deploy leaves the old record.
    assert parts[-2] == ["fs", "cp", "-f", copies["/" + BOARD_RECORD], ":/" + BOARD_RECORD]


def test_a_second_deploy_copies_only_what_changed(tmp_path, source_tree, fake_mpremote):
    env, calls, script = fake_mpremote
    out = build_for("esp32s3", tmp_path, source_tree)["out"]
    with open(os.path.join(out, "BUILD.json")) as f:
        on_board = json.load(f)
    on_board["files"]["lib/pedal/main.mpy"]["sha256"] = "0" * 64  # the board has an older main
    on_board["files"]["lib/pedal/gone.mpy"] = {"size": 3, "sha256": "1" * 64}  # and a module since deleted
    with open(env["FAKE_BOARD_RECORD"], "w") as f:
        json.dump(on_board, f)

    result = deploy_cli(env, "--board", "esp32s3", "--port", "/dev/ttyACM0", "--out", out)
    assert result.exit_code == 0, result.output
    assert "1 files copied" in result.stdout and "1 removed" in result.stdout
    copy = calls()[1]
    assert sorted(copied_files(copy, out)) == ["/" + BOARD_RECORD, "/lib/pedal/main.mpy"]
    script_text = _split_plus(copy)[1][1]
    assert "'/lib/pedal/gone.mpy'" in script_text and "'/lib/pedal'" in script_text


def test_an_up_to_date_board_is_left_alone(tmp_path, source_tree, fake_mpremote):
    env, calls, script = fake_mpremote
    out = build_for("esp32c3", tmp_path, source_tree)["out"]
    shutil.copy(os.path.join(out, "BUILD.json"), env["FAKE_BOARD_RECORD"])
    result = deploy_cli(env, "--board", "esp32c3", "--port", "/dev/ttyACM0", "--out", out)
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout and len(calls()) == 1  # the probe only: no copy, no reset

    result = deploy_cli(env, "--board", "esp32c3", "--port", "/dev/ttyACM0", "--out", out, "--force")
    assert result.exit_code == 0, result.output
    forced = calls()[1:]
    assert len(forced) == 1 and _split_plus(forced[0])[-1] == ["reset"]  # no probe, everything copied


@pytest.mark.parametrize("failure, message, code", [
    ("mpremote: failed to access /dev/ttyUSB9 (it may be in use by another program)",
     "cannot open /dev/ttyUSB9: no such port, or another program (a serial monitor?) has it open", 2),  # a bad --port
    ("mpremote.transport.TransportError: could not enter raw repl",
     "the board on /dev/ttyUSB9 does not answer: is MicroPython on it?", 1),
    ("mpremote: something odd\n", "mpremote failed on /dev/ttyUSB9: mpremote: something odd", 1),
])
def test_deploy_failures_are_one_line(tmp_path, source_tree, fake_mpremote, failure, message, code):
    env, calls, script = fake_mpremote
    out = build_for("esp32_generic", tmp_path, source_tree)["out"]
    env["FAKE_MPREMOTE_FAIL"] = failure
    result = deploy_cli(env, "--board", "esp32_generic", "--port", "/dev/ttyUSB9", "--out", out)
    assert result.exit_code == code
    assert result.stderr.startswith("tonebridge: error: " + message)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_deploy_needs_a_build_and_a_real_board(tmp_path, fake_mpremote):
    env, calls, script = fake_mpremote
    result = deploy_cli(env, "--board", "esp32_generic", "--port", "/dev/ttyUSB0", "--out", str(tmp_path / "none"))
    assert result.exit_code == 1 and "run `tonebridge firmware build --board esp32_generic` first" in result.stderr
    result = deploy_cli(env, "--board", "unix_sim", "--port", "/dev/ttyUSB0")
    assert result.exit_code == 2 and "tonebridge sim" in result.stderr
    assert calls() == []


def test_the_deploy_command_line(tmp_path):
    board = load_board("esp32_generic")
    argv = deploy_command(["mpremote"], "COM3", board, "/b", ["main.py", "ca/x.der", "lib/pedal/a.mpy",
                                                                 "lib/pedal/b.mpy"], ["lib/old.mpy"], "/rec.json")
    assert argv[:3] == ["mpremote", "connect", "COM3"]
    parts = _split_plus(argv)
    assert parts[1][0] == "exec"
    assert parts[2:] == [
        ["fs", "cp", "-f", "/b/main.py", ":/"],
        ["fs", "cp", "-f", "/b/ca/x.der", ":/ca/"],
        ["fs", "cp", "-f", "/b/lib/pedal/a.mpy", "/b/lib/pedal/b.mpy", ":/lib/pedal/"],
        ["fs", "cp", "-f", "/rec.json", ":/" + BOARD_RECORD],
        ["reset"],
    ]


def test_the_code_sent_to_the_board_runs_under_micropython(tmp_path):
    """The exec script (remove, mkdir) and the record probe, run by MicroPython on a folder."""
    flash = tmp_path / "flash"
    (flash / "lib").mkdir(parents=True)  # exists already: must be no error
    (flash / "lib" / "old.mpy").write_text("x")
    board = load_board("unix_sim")  # FS_ROOT /flash: rooted in tmp_path below
    argv = deploy_command(["mpremote"], "p", board, "/b", ["lib/pedal/x/a.mpy", "ca/r.der"],
                          ["lib/old.mpy", "lib/never-there.mpy"], "/r")
    script = _split_plus(argv)[1][1].replace("'/flash/", "'%s/" % flash)
    run_micropython(script, str(tmp_path))
    assert sorted(os.listdir(flash)) == ["ca", "lib"] and sorted(os.listdir(flash / "lib")) == ["pedal"]
    assert os.listdir(flash / "lib" / "pedal") == ["x"]

    record_path = str(flash / BOARD_RECORD)
    probe = deploy_module._probe_script(record_path)
    assert parse_probe(run_micropython(probe, str(tmp_path))) is None
    with open(record_path, "w") as f:
        json.dump({"board": "b", "files": {"main.py": {"size": 1, "sha256": "ab"}}}, f)
    assert parse_probe(run_micropython(probe, str(tmp_path)))["files"] == {"main.py": {"size": 1, "sha256": "ab"}}


def test_mpremote_is_found_on_path_first(tmp_path, fake_mpremote, monkeypatch):
    env, calls, script = fake_mpremote
    monkeypatch.setenv("PATH", env["PATH"])
    assert deploy_module.mpremote_command() == [script]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = deploy_module.mpremote_command()  # the venv's, beside this Python, or `python -m mpremote`
    assert found[0].startswith(VENV_BIN) or found[-2:] == ["-m", "mpremote"]


def test_the_readme_documents_the_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for text in ("make firmware BOARD=", "tonebridge firmware deploy --board", "FROZEN_MANIFEST=", "config.json"):
        assert text in readme, text
    with open(os.path.join(ROOT, "boards", "README.md")) as f:
        boards_readme = f.read()
    for field in FIELDS:
        assert "`%s`" % field in boards_readme, field


def test_real_boards_leave_out_the_simulator_modules(tmp_path):
    record = build("esp32_generic", str(tmp_path / "esp32"))
    assert "lib/pedal/main.mpy" in record["files"] and "lib/pedal/net.mpy" in record["files"]
    assert not [name for name in record["files"] if name.startswith("lib/simboard/")]
    record = build("unix_sim", str(tmp_path / "sim"))
    assert "lib/simboard/boot.mpy" in record["files"] and "lib/simboard/flash.mpy" in record["files"]
    assert "main.py" not in record["files"]
