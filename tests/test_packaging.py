"""pip users (pyproject.toml) and conda/Binder users (environment.yml) get the same environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> tuple[str, str]:
    """('numpy', '>=1.24') from 'numpy>=1.24' (PEP 503 name, spaces dropped)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", requirement)
    assert match, f"cannot read the requirement {requirement!r}"
    name, spec = match.groups()
    return re.sub(r"[-_.]+", "-", name).lower(), spec.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(normalise(r) for r in requirements) | {"python": project["requires-python"]}


def environment_requirements() -> tuple[dict[str, str], list[str]]:
    """The conda dependencies and the pip sub-list of environment.yml (a flat, simple file)."""
    conda, pip, section = {}, [], None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
        elif section == "dependencies":
            item = line.strip().removeprefix("- ").strip()
            if line.startswith("  - pip:"):
                continue
            if line.startswith("      - "):
                pip.append(item)
            else:
                conda.__setitem__(*normalise(item))
    return conda, pip


def test_pyproject_and_environment_list_the_same_dependencies() -> None:
    conda, pip = environment_requirements()
    conda.pop("pip")  # conda needs pip itself to install the package
    from_pip = dict(normalise(item) for item in pip if item != "-e .")  # not on conda-forge
    assert not conda.keys() & from_pip.keys()
    assert conda | from_pip == pyproject_requirements()


def test_environment_installs_the_package_itself() -> None:
    _, pip = environment_requirements()
    assert pip[-1] == "-e ."


def test_the_suite_runs_nbval_strict_over_every_notebook_folder() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--nbval" in options["addopts"].split() and "--nbval-lax" not in options["addopts"]
    assert {"tests", "notebooks", "exercises"} <= set(options["testpaths"])


def test_ci_runs_the_readme_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*(exec\s+)?make test\b", ci, re.MULTILINE)
    assert "make test" in (ROOT / "README.md").read_text()


def test_the_packages_data_files_are_all_shipped() -> None:
    """Every file of the data folders (the checkpoint, results, the GPT's corpus and its notice)
    matches a package-data pattern, read as setuptools reads it (a glob in the package)."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["course_lib"]
    package = ROOT / "course_lib"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    data = {path for folder in ("results", "texts") for path in (package / folder).rglob("*")
            if path.is_file()}
    assert {"gpt_char.npz", "python_help_topics.txt.gz", "python_help_topics.NOTICE.md"} <= {
        path.name for path in data}
    assert data <= shipped, sorted(str(path.relative_to(package)) for path in data - shipped)
