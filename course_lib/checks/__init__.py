"""Checkers for the exercises: `check_<function>(fn)` calls your function on its own cases.

    from course_lib.checks import check_softmax
    check_softmax(softmax)          # ✓ softmax: all 11 cases passed.

A check returns a `CheckResult`: `.passed`, `.feedback` (the text you read: the smallest
failing case, expected and received values, a hint naming the likely mistake), truthy exactly
when passed. It never raises because of your code. Keywords: `timeout` (seconds per case,
10 by default) and `harder=True` (the optional harder cases: batches, more axes).

One module per exercise, named after it: qkv_projections (01), dot_product_scores (02),
scaling_and_softmax (03), weighted_sum (04), rnn_vs_attention (05), parallelism (06),
masks_heads_and_applications (07). The shared machinery: core (cases, known
mistakes, judge, diagnosis), calling (calls the learner's function: time limit, copies of the
inputs, exceptions), result (the rendering). `CHECKS` maps each function name to its
`Checker`, for the grader.
"""

from __future__ import annotations

from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.core import Case, Checker, Mistake
from course_lib.checks.dot_product_scores import ATTENTION_SCORES, check_attention_scores
from course_lib.checks.masks_heads_and_applications import (
    CAUSAL_MASK,
    MASKED_ATTENTION_WEIGHTS,
    MULTI_HEAD_SELF_ATTENTION,
    check_causal_mask,
    check_masked_attention_weights,
    check_multi_head_self_attention,
)
from course_lib.checks.parallelism import BLOCKWISE_ATTENTION, check_blockwise_attention
from course_lib.checks.qkv_projections import PROJECT_QKV, check_project_qkv
from course_lib.checks.result import CheckResult
from course_lib.checks.rnn_vs_attention import RNN_FORWARD, check_rnn_forward
from course_lib.checks.scaling_and_softmax import (
    ATTENTION_WEIGHTS,
    SCALE_SCORES,
    SOFTMAX,
    check_attention_weights,
    check_scale_scores,
    check_softmax,
)
from course_lib.checks.weighted_sum import (
    SELF_ATTENTION,
    WEIGHTED_SUM,
    check_self_attention,
    check_weighted_sum,
)

__all__ = [
    "CHECKS",
    "DEFAULT_TIMEOUT",
    "Case",
    "CheckResult",
    "Checker",
    "Mistake",
    "check_project_qkv",
    "check_attention_scores",
    "check_scale_scores",
    "check_softmax",
    "check_attention_weights",
    "check_weighted_sum",
    "check_self_attention",
    "check_rnn_forward",
    "check_blockwise_attention",
    "check_causal_mask",
    "check_masked_attention_weights",
    "check_multi_head_self_attention",
]

CHECKS: dict[str, Checker] = {
    checker.function: checker
    for checker in (
        PROJECT_QKV,
        ATTENTION_SCORES,
        SCALE_SCORES,
        SOFTMAX,
        ATTENTION_WEIGHTS,
        WEIGHTED_SUM,
        SELF_ATTENTION,
        RNN_FORWARD,
        BLOCKWISE_ATTENTION,
        CAUSAL_MASK,
        MASKED_ATTENTION_WEIGHTS,
        MULTI_HEAD_SELF_ATTENTION,
    )
}
"""Function name -> its checker (cases, reference, known mistakes), for the grader."""
