"""Rules of the codebase that a reviewer would otherwise have to remember."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    on_disk = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            name = ".".join((package, *rel.parts)) if rel.parts else package
            if not any(part.startswith((".", "_")) for part in rel.parts):
                on_disk.add(name)
    missing = sorted(on_disk - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert not sorted(listed - on_disk), "pyproject lists packages that do not exist"


def test_the_wheel_holds_every_module_and_data_file(tmp_path: Path) -> None:
    """Built the way users install it: tmsctl/drivers/..., tmsctl/protocols/..., data included."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("tmsctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = set()
    for package, folder in config["package-dir"].items():
        base = ROOT / folder
        for path in base.rglob("*"):
            if path.suffix in {".py", ".yaml", ".json"} and "__pycache__" not in path.parts:
                expected.add("/".join((*package.split("."), *path.relative_to(base).parts)))
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing[:10]}"
