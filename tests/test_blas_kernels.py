"""The training lessons pass on other CPUs' arithmetic (issue 20, §2).

Training amplifies rounding: the same code gives other numbers with another BLAS kernel or
another SIMD path in numpy. A lesson's claims must hold on any learner's machine, so the training
lessons and their solution notebooks run under nbval, exactly as in `make test`, once per
environment below:

- OpenBLAS forced to other core types (`OPENBLAS_CORETYPE`): Haswell (AVX2, FMA), SandyBridge
  (AVX), Prescott (SSE3 only);
- numpy's CPU dispatch turned down (`NPY_DISABLE_CPU_FEATURES`) to its baseline: every dispatch
  target this numpy build has and this CPU offers is disabled (numpy 2.4 on x86-64: X86_V3,
  X86_V4, AVX512_ICL, AVX512_SPR; older names such as AVX2 or AVX512F are ignored by it, with only
  an ImportWarning, so they are computed here, not written down). The baseline itself cannot be
  disabled (numpy refuses to start).

Each run's first notebook is a probe that records the kernel's OpenBLAS core type and numpy's
dispatched features, and the test asserts that the environment really took effect: a variable
that changed nothing would make the test pass without testing anything.

Run alone: `.venv/bin/python -m pytest -m kernels tests/test_blas_kernels.py` (a few minutes).
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from nbval_runs import probe_record, run_nbval

pytestmark = pytest.mark.kernels

# The notebooks whose numbers come from training (repository paths): every run runs them all.
TRAINING_NOTEBOOKS = [
    "notebooks/05_training.ipynb",
    "notebooks/06_rnn_vs_attention.ipynb",
    "exercises/solutions/05_training.ipynb",
    "exercises/solutions/06_rnn_vs_attention.ipynb",
    # the lessons that train live (a tiny GPT, an encoder-decoder) or measure a trained model
    "notebooks/10_tiny_gpt.ipynb",
    "notebooks/11_generation_and_kv_cache.ipynb",
    "notebooks/12_trained_heads.ipynb",
    "notebooks/13_cross_attention.ipynb",
]
# OPENBLAS_CORETYPE -> the names OpenBLAS may report for it (threadpoolctl's "architecture"; a
# DYNAMIC_ARCH build whose list lacks the oldest cores maps them onto Prescott's kernels, and then
# reports Prescott as "Katmai", the first of them) and the CPU features its kernels need.
CORE_TYPES = {
    "Haswell": ({"haswell"}, ("AVX2", "FMA3")),
    "SandyBridge": ({"sandybridge"}, ("AVX",)),
    "Prescott": ({"prescott", "katmai"}, ("SSE3",)),
}
X86_64 = {"x86_64", "amd64"}


@pytest.fixture(scope="module")
def default() -> dict:
    """The kernel with no variable set: its OpenBLAS core type and numpy's dispatch."""
    return probe_record()


def test_the_notebooks_exist() -> None:
    root = Path(__file__).resolve().parents[1]
    assert [path for path in TRAINING_NOTEBOOKS if not (root / path).is_file()] == []


@pytest.mark.parametrize("core_type", list(CORE_TYPES))
def test_training_lessons_under_an_openblas_core_type(
    core_type: str, default: dict, tmp_path: Path
) -> None:
    names, needs = CORE_TYPES[core_type]
    if not default["openblas"]:
        pytest.skip("numpy here does not use OpenBLAS (OPENBLAS_CORETYPE has no effect): the "
                    "kernel test needs numpy's x86-64 wheel from PyPI (pip install numpy)")
    if platform.machine().lower() not in X86_64:
        pytest.skip(f"OpenBLAS core types of x86-64 cannot run on {platform.machine()}")
    missing = [feature for feature in needs if not default["cpu"].get(feature)]
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}, which {core_type}'s kernels need")

    run = run_nbval(TRAINING_NOTEBOOKS, {"OPENBLAS_CORETYPE": core_type}, tmp_path)

    assert run.probe is not None, run.report()
    assert run.probe["environment"]["OPENBLAS_CORETYPE"] == core_type
    reported = {name.lower() for name in run.probe["openblas"]}
    assert reported and reported <= names, (
        f"OPENBLAS_CORETYPE={core_type} did not take effect: OpenBLAS reports "
        f"{run.probe['openblas']} (without it: {default['openblas']})")
    print(f"OPENBLAS_CORETYPE={core_type}: OpenBLAS {run.probe['openblas']}, "
          f"{len(TRAINING_NOTEBOOKS)} notebooks in {run.seconds:.0f} s")
    assert run.returncode == 0, run.report()


def test_training_lessons_with_numpys_cpu_dispatch_turned_down(
    default: dict, tmp_path: Path
) -> None:
    available = [name for name, on in default["dispatch"].items() if on]
    if not available:
        pytest.skip("numpy dispatches to nothing beyond its baseline on this CPU: there is "
                    "nothing to turn down")
    disabled = " ".join(available)

    run = run_nbval(TRAINING_NOTEBOOKS, {"NPY_DISABLE_CPU_FEATURES": disabled}, tmp_path)

    assert run.probe is not None, run.report()
    assert run.probe["environment"]["NPY_DISABLE_CPU_FEATURES"] == disabled
    still_on = [name for name in available if run.probe["dispatch"][name]]
    assert not still_on, (
        f"NPY_DISABLE_CPU_FEATURES={disabled!r} did not take effect: numpy still dispatches "
        f"to {still_on}")
    print(f"NPY_DISABLE_CPU_FEATURES={disabled!r}: numpy dispatch {run.probe['dispatch']}, "
          f"{len(TRAINING_NOTEBOOKS)} notebooks in {run.seconds:.0f} s")
    assert run.returncode == 0, run.report()


def test_the_probe_tells_a_variable_that_took_effect_from_one_that_did_not(
    default: dict,
) -> None:
    """The probe itself (its code is the probe notebook's): a dispatch name numpy ignores, or a
    core type OpenBLAS does not know, changes nothing and the probe says so, so the checks above
    can fail; the real names change what it reports."""
    ignored = probe_record({"NPY_DISABLE_CPU_FEATURES": "NO_SUCH_FEATURE",
                            "OPENBLAS_CORETYPE": "NoSuchCore"})
    assert ignored["dispatch"] == default["dispatch"]
    assert ignored["openblas"] == default["openblas"]
    available = " ".join(name for name, on in default["dispatch"].items() if on)
    if available:
        turned_down = probe_record({"NPY_DISABLE_CPU_FEATURES": available})
        assert not any(turned_down["dispatch"].values())
    if default["openblas"] and platform.machine().lower() in X86_64:
        forced = probe_record({"OPENBLAS_CORETYPE": "Prescott"})
        assert {name.lower() for name in forced["openblas"]} <= CORE_TYPES["Prescott"][0]
