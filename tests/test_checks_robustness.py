"""A checker never raises because of the learner's code, and says clearly what went wrong."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from course_lib import attention
from course_lib.checks import (
    CHECKS,
    CheckResult,
    check_attention_scores,
    check_project_qkv,
    check_self_attention,
    check_softmax,
)
from course_lib.checks.calling import Outcome, call_learner
from course_lib.checks.core import Case, case_tolerance, softmax_rows, tolerance

SHORT = 0.3  # seconds: the time limit in these tests


def stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError


def raises(x, axis=-1):
    width = x.shape[-1]
    return x @ np.ones((width + 1, 2))  # a shape error


def returns_none(x, axis=-1):
    np.exp(x)


def returns_nan(x, axis=-1):
    return np.full(x.shape, np.nan)


def wrong_shape(x, axis=-1):
    return np.ones(x.shape + (1,))


def endless(x, axis=-1):
    i = 0
    while i < 10:
        pass
    return x


def endless_swallowing(x, axis=-1):
    while True:
        try:
            time.sleep(0.01)
        except Exception:  # noqa: BLE001 - the learner's code: must not swallow the time-out
            pass


def mutates(x, axis=-1):
    x[...] = 0.0
    e = np.exp(np.zeros_like(x))
    return e / e.sum(axis=axis, keepdims=True)


def returns_string(x, axis=-1):
    return "softmax"


def returns_object_array(x, axis=-1):
    return np.array([object()] * x.size).reshape(x.shape)


def test_stub_is_not_implemented_yet():
    result = check_softmax(stub)
    assert not result
    assert result.diagnosis == "not-implemented"
    assert str(result) == (
        "✗ softmax: not implemented yet: replace `raise NotImplementedError` with your code."
    )
    assert "Traceback" not in result.feedback


def test_exception_gives_type_message_and_the_learners_line():
    result = check_softmax(raises)
    assert not result
    assert "Your function raised ValueError" in result.feedback
    assert "return x @ np.ones((width + 1, 2))" in result.feedback
    assert "Traceback" not in result.feedback
    assert result.feedback.count("\n  at line") == 1


def test_none_is_a_forgotten_return():
    result = check_softmax(returns_none)
    assert "returned None" in result.feedback and "return" in result.hint


def test_nan_is_reported():
    result = check_softmax(returns_nan)
    assert not result
    assert "contains NaN" in result.feedback


def test_wrong_shape_is_reported():
    result = check_softmax(wrong_shape)
    assert not result
    assert "has shape (3, 1); expected (3,)" in result.feedback


@pytest.mark.parametrize("fn", [endless, endless_swallowing], ids=lambda f: f.__name__)
def test_endless_loop_is_stopped(fn):
    start = time.perf_counter()
    result = check_softmax(fn, timeout=SHORT)
    assert time.perf_counter() - start < 5 * SHORT + 1
    assert not result
    assert result.diagnosis == "timeout"
    assert "stopped after 0.3 s" in result.feedback
    assert "loop that never ends" in result.feedback


def test_endless_loop_is_stopped_away_from_the_main_thread():
    """Without SIGALRM (another thread, Windows) the call runs in a daemon thread that is
    abandoned after the time limit; this one stops itself when the test is over."""
    stop = threading.Event()

    def waits(x, axis=-1):
        while not stop.is_set():
            time.sleep(0.01)

    box: dict[str, CheckResult] = {}
    thread = threading.Thread(target=lambda: box.update(r=check_softmax(waits, timeout=SHORT)))
    thread.start()
    thread.join(10)
    stop.set()
    assert box["r"].diagnosis == "timeout"


def test_the_default_time_limit_is_ten_seconds():
    assert call_learner.__defaults__[-1] == 10.0


def test_mutation_is_reported_even_with_right_values():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    result = check_softmax(mutates)
    assert not result
    assert result.diagnosis == "mutation"
    assert "changed its input `x` in place" in result.feedback
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_the_checkers_own_cases_are_not_modified():
    check_softmax(mutates)
    assert check_softmax(attention.softmax)


@pytest.mark.parametrize("fn", [returns_string, returns_object_array], ids=lambda f: f.__name__)
def test_non_arrays_are_reported(fn):
    result = check_softmax(fn)
    assert not result
    assert result.diagnosis == "type"


def test_a_value_instead_of_the_function():
    result = check_softmax(np.array([0.5, 0.5]))
    assert not result
    assert "check_softmax(softmax)" in result.feedback


def test_a_tuple_of_the_wrong_length_or_kind():
    assert "returned 2 values" in check_project_qkv(lambda X, *W: (X, X)).feedback
    result = check_project_qkv(lambda X, *W: (X @ W[0], X @ W[1], "V"))
    assert "Your output `V` is a str" in result.feedback
    assert check_self_attention(lambda *a: 42).diagnosis == "type"


def test_no_warnings_leak_out(recwarn):
    def no_max(x, axis=-1):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)

    check_softmax(no_max)
    assert len(recwarn) == 0


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_reference_passes_fast_and_deterministically(name):
    checker = CHECKS[name]
    fn = checker.reference
    start = time.perf_counter()
    first = checker.check(fn)
    elapsed = time.perf_counter() - start
    assert first.passed, first.feedback
    assert elapsed < 0.5
    assert repr(first) == repr(checker.check(fn)) == f"✓ {name}: {first.summary}"
    assert checker.check(fn, harder=True).passed


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_reference_passes_fresh_cases_as_the_grader_draws_them(name):
    """The grader adds fresh cases drawn from its seed: the reference passes them for any seed."""
    checker = CHECKS[name]

    def caller(case):
        return call_learner(checker.reference, case.args, case.kwargs)

    for seed in (3, 11):
        result = checker.run(caller, harder=True, seed=seed)
        assert result.passed, result.feedback


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_checker_survives_a_stub_and_garbage(name):
    checker = CHECKS[name]
    assert checker.check(lambda *a, **k: None).diagnosis == "type"
    assert checker.check(lambda *a, **k: 1 / 0).diagnosis in ("exception",)
    assert checker.check(lambda: None).diagnosis == "exception"  # wrong signature
    result = checker.check(stub)
    assert result.diagnosis == "not-implemented"


def test_result_renders_as_html_and_text():
    good, bad = check_attention_scores(lambda Q, K: Q @ K.T), check_attention_scores(stub)
    assert bool(good) and not bool(bad)
    assert "✓" in good._repr_html_() and "#1a7f37" in good._repr_html_()
    assert "✗" in bad._repr_html_() and "#c62828" in bad._repr_html_()
    assert "<code>attention_scores</code>" in bad._repr_html_()
    failing = check_attention_scores(lambda Q, K: K @ Q.T)
    assert "<details>" in failing._repr_html_() and "Hint:" in failing._repr_html_()
    assert str(failing) == repr(failing) == failing.feedback


def test_a_remote_caller_can_replace_the_local_one():
    """The grader calls the learner's function elsewhere and hands back plain outcomes."""
    checker = CHECKS["softmax"]
    calls = []

    def caller(case):
        calls.append(case.name)
        value = attention.softmax(*(v for _, v in case.args), **case.kwargs)
        return Outcome(value=np.asarray(value).tolist() and value)

    assert checker.run(caller).passed
    assert len(calls) == len(checker.cases())


def test_a_float32_result_from_float64_inputs_is_accepted():
    def softmax32(x, axis=-1):
        x = x.astype(np.float32)
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    assert check_softmax(softmax32).passed


def test_wrong_values_report_the_largest_difference():
    result = check_attention_scores(lambda Q, K: Q @ K.T + 0.5)
    assert "wrong values (largest difference 0.5)" in result.feedback


# -- the time limit holds whatever the learner's code catches (a process boundary) -------------


def endless_bare_except(x, axis=-1):
    while True:
        try:
            time.sleep(0.01)
        except:  # noqa: E722 - the learner's code: catches the time-out too
            pass


def endless_base_exception(x, axis=-1):
    while True:
        try:
            while True:
                pass
        except BaseException:  # noqa: BLE001 - caught again and again, in a loop
            pass


def ends_the_process(x, axis=-1):
    import os

    os._exit(3)


@pytest.mark.parametrize(
    "fn", [endless_bare_except, endless_base_exception], ids=lambda f: f.__name__
)
def test_a_time_out_cannot_be_swallowed(fn):
    start = time.perf_counter()
    result = check_softmax(fn, timeout=SHORT)
    assert time.perf_counter() - start < SHORT + 1  # the limit plus a second, as promised
    assert result.diagnosis == "timeout" and "stopped after 0.3 s" in result.feedback


def test_a_time_out_cannot_be_swallowed_away_from_the_main_thread():
    box: dict[str, CheckResult] = {}
    thread = threading.Thread(
        target=lambda: box.update(r=check_softmax(endless_base_exception, timeout=SHORT))
    )
    thread.start()
    thread.join(SHORT + 1)
    assert box["r"].diagnosis == "timeout"


def test_a_function_that_ends_its_process_fails_cleanly():
    result = check_softmax(ends_the_process)
    assert not result and result.diagnosis == "exception"
    assert "ProcessEnded" in result.feedback and "exit code 3" in result.feedback
    assert check_softmax(attention.softmax)  # this process is still here


def test_what_the_learner_prints_still_reaches_the_output(capfd):
    def talks(x, axis=-1):
        print("shape of x:", x.shape)
        return attention.softmax(x, axis)

    assert check_softmax(talks)
    out = capfd.readouterr().out
    assert out.count("shape of x: (3,)") == 1 and "shape of x: (2, 3)" in out


def test_the_learners_globals_are_left_alone_and_memory_is_still_measured():
    seen: list[int] = []

    def records(n):
        seen.append(n)  # in the child process: the caller's list never changes
        return np.ones((n, n))

    outcome = call_learner(records, [("n", 256)], measure_memory=True, isolate=True)
    assert seen == [] and outcome.value.shape == (256, 256)
    assert 256 * 256 * 8 <= outcome.peak_memory < 2 * 256 * 256 * 8


def test_in_a_jupyter_kernel_a_swallowed_time_out_still_comes_back():
    """The check runs on the kernel's main thread, as in JupyterLab."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = (
        "import time\n"
        "from course_lib.checks import check_softmax\n"
        "def softmax(x, axis=-1):\n"
        "    print('called')\n"
        "    while True:\n"
        "        try:\n"
        "            time.sleep(0.01)\n"
        "        except:\n"
        "            pass\n"
        "start = time.perf_counter()\n"
        "result = check_softmax(softmax, timeout=0.5)\n"
        "print(result.diagnosis, time.perf_counter() - start < 1.5)\n"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    text = "".join(output.get("text", "") for output in notebook.cells[0].outputs)
    assert text.count("called") == 1 and "timeout True" in text


# -- the judge: tolerances from the case, the wrong kind named first, its own arrays -----------


def softmax_plus(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / (e.sum(axis=axis, keepdims=True) + 1e-3)


def test_returning_float16_cannot_loosen_the_tolerance():
    assert not check_softmax(softmax_plus)
    result = check_softmax(lambda x, axis=-1: softmax_plus(x, axis).astype(np.float16))
    assert not result and result.n_passed == 0 and result.diagnosis == "low-precision"
    exact16 = check_softmax(lambda x, axis=-1: attention.softmax(x, axis).astype(np.float16))
    assert exact16.diagnosis == "low-precision" and "float16" in exact16.feedback


def test_the_tolerance_depends_on_the_case_only():
    checker = CHECKS["softmax"]
    assert {case_tolerance(case) for case in checker.cases()} == {tolerance(4)}
    case = Case("float16 scores", (("x", np.ones((2, 3), np.float16)),))
    assert case_tolerance(case) == tolerance(2)


@pytest.mark.parametrize(
    ("fn", "key", "words"),
    [
        (lambda x, axis=-1: attention.softmax(x, axis) > 0.3, "boolean-result", "not True/False"),
        (lambda x, axis=-1: (attention.softmax(x, axis) * 100).astype(int), "integer-result",
         "whole numbers"),
        (lambda x, axis=-1: list(attention.softmax(np.atleast_2d(x), axis)), "type", "np.stack"),
    ],
    ids=["bool-for-float", "int-for-float", "list-of-arrays"],
)
def test_a_result_of_the_wrong_kind_is_named_first(fn, key, words):
    result = check_softmax(fn)
    assert not result and result.diagnosis == key, result.feedback
    assert words in result.feedback


class Liar(np.ndarray):
    """All zeros, but every comparison and every numpy ufunc says "equal" or "finite"."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        shape = np.broadcast_shapes(*(np.shape(i) for i in inputs))
        if ufunc in (np.isfinite, np.less_equal, np.less, np.equal, np.isnan):
            return np.ones(shape, dtype=bool)
        return np.zeros(shape)

    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)

    def astype(self, *args, **kwargs):
        return self


def test_an_ndarray_subclass_cannot_fool_the_judge():
    result = check_softmax(lambda x, axis=-1: np.zeros(np.shape(x)).view(Liar))
    assert not result and result.diagnosis == "values"


def test_numpy_patched_in_the_notebook_cannot_fool_the_judge(monkeypatch):
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "isclose", lambda a, b, *r, **k: np.ones(np.broadcast(a, b).shape,
                                                                      dtype=bool))
    monkeypatch.setattr(np, "abs", lambda a: np.zeros(np.shape(a)))
    monkeypatch.setattr(np, "isfinite", lambda a: np.ones(np.shape(a), dtype=bool))
    result = check_softmax(lambda x, axis=-1: np.zeros(np.shape(x)))
    assert not result and result.diagnosis == "values"


def test_softmax_rows_gives_zeros_for_a_row_of_minus_infinity():
    weights = softmax_rows(np.array([[0.0, -np.inf], [-np.inf, -np.inf]]))
    np.testing.assert_array_equal(weights, [[1.0, 0.0], [0.0, 0.0]])


def test_without_a_safe_fork_a_thread_still_bounds_the_check(monkeypatch):
    """Windows and macOS: the call runs in a daemon thread, asked to stop at the limit."""
    monkeypatch.setattr("course_lib.checks.calling.can_isolate", lambda: False)
    start = time.perf_counter()
    result = check_softmax(endless, timeout=SHORT)
    assert result.diagnosis == "timeout" and time.perf_counter() - start < SHORT + 1
    deadline = time.monotonic() + 2
    while any(t.name == "learner-call" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the endless loop was not stopped"
        time.sleep(0.01)
    assert check_softmax(attention.softmax) and check_softmax(mutates).diagnosis == "mutation"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_checker_names_a_result_of_the_wrong_kind_first(name):
    """The reference itself, its results recast: floats as float16, a boolean mask as 0/1
    floats. Right values, wrong kind: named as such, before any known mistake is ranked."""
    checker = CHECKS[name]

    def recast(*args, **kwargs):
        value = checker.reference(*args, **kwargs)
        items = tuple(np.asarray(v) for v in (value if isinstance(value, tuple) else (value,)))
        cast = tuple(v.astype(np.float64 if v.dtype == np.bool_ else np.float16) for v in items)
        return cast if isinstance(value, tuple) else cast[0]

    result = checker.check(recast)
    assert not result and result.diagnosis in ("low-precision", "not-boolean"), result.feedback


# -- a parameter missing from the learner's signature, named by the shared judge --------------


def _softmax_without_axis(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _rnn_forward_without_h0(X, W_xh, W_hh, b_h):
    h, H = np.zeros(W_hh.shape[0]), []
    for x in X:
        h = np.tanh(x @ W_xh + h @ W_hh + b_h)
        H.append(h)
    return np.array(H)


@pytest.mark.parametrize(("function", "fn", "harder", "parameter"), [
    ("softmax", _softmax_without_axis, True, "`axis=-1`"),  # a keyword the function lacks
    ("rnn_forward", _rnn_forward_without_h0, False, "`h0=None`"),  # one positional too many
])
def test_a_parameter_missing_from_the_signature_is_named_with_its_default(
        function: str, fn, harder: bool, parameter: str) -> None:
    result = CHECKS[function].check(fn, harder=harder)
    assert not result
    assert result.diagnosis == f"{parameter[1:].split('=')[0]}-parameter", result.feedback
    assert f"needs the parameter {parameter}" in result.hint, result.feedback
