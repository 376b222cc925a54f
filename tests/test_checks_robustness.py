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
    assert "Your V is a str" in check_project_qkv(lambda X, *W: (X @ W[0], X @ W[1], "V")).feedback
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
