"""Checkers for the exercises: `check_<function>(fn)` calls your function on its own cases.

    from course_lib.checks import check_softmax
    check_softmax(softmax)          # ✓ softmax: all 11 cases passed.

A check returns a `CheckResult`: `.passed`, `.feedback` (the text you read: the smallest
failing case, expected and received values, a hint naming the likely mistake), truthy exactly
when passed. It never raises because of your code. Keywords: `timeout` (seconds per case,
10 by default; your function runs in a child process that is stopped at the limit, whatever
it catches) and `harder=True` (the optional harder cases: batches, more axes).

One module per exercise, named after it: qkv_projections (01), dot_product_scores (02),
scaling_and_softmax (03), weighted_sum (04), training (05), rnn_vs_attention (06),
parallelism (07), masks_heads_and_applications (08), transformer_block (09), tiny_gpt (10),
generation_and_kv_cache (11), cross_attention (13). The shared machinery: core (the Checker
and its pipeline), cases (Case, Mistake), drawing (the cases' random numbers), tolerances,
judging (one outcome against the reference), diagnosis (the likely mistake and its hint),
formatting (arrays and values as the learner sees them), calling (calls the learner's function
in a forked child process: time limit, copies of the inputs, exceptions, peak memory), result
(the rendering).
`CHECKS` maps each function name to its `Checker`, for the grader.
"""

from __future__ import annotations

from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.core import Checker
from course_lib.checks.cross_attention import (
    CROSS_ATTENTION,
    CROSS_ATTENTION_BACKWARD,
    check_cross_attention,
    check_cross_attention_backward,
)
from course_lib.checks.dot_product_scores import ATTENTION_SCORES, check_attention_scores
from course_lib.checks.generation_and_kv_cache import (
    ATTEND_WITH_CACHE,
    NEXT_TOKEN_PROBABILITIES,
    check_attend_with_cache,
    check_next_token_probabilities,
)
from course_lib.checks.masks_heads_and_applications import (
    CAUSAL_MASK,
    MASKED_ATTENTION_WEIGHTS,
    MULTI_HEAD_SELF_ATTENTION,
    check_causal_mask,
    check_masked_attention_weights,
    check_multi_head_self_attention,
)
from course_lib.checks.parallelism import (
    ATTENTION_ROWS,
    BLOCKWISE_ATTENTION,
    check_attention_rows,
    check_blockwise_attention,
)
from course_lib.checks.qkv_projections import PROJECT_QKV, check_project_qkv
from course_lib.checks.result import CheckResult
from course_lib.checks.rnn_vs_attention import (
    RNN_BACKWARD,
    RNN_FORWARD,
    check_rnn_backward,
    check_rnn_forward,
)
from course_lib.checks.scaling_and_softmax import (
    ATTENTION_WEIGHTS,
    SCALE_SCORES,
    SOFTMAX,
    check_attention_weights,
    check_scale_scores,
    check_softmax,
)
from course_lib.checks.tiny_gpt import (
    CAUSAL_LM_LOSS,
    MAKE_INPUTS_AND_TARGETS,
    check_causal_lm_loss,
    check_make_inputs_and_targets,
)
from course_lib.checks.training import (
    SELF_ATTENTION_BACKWARD,
    SOFTMAX_BACKWARD,
    check_self_attention_backward,
    check_softmax_backward,
)
from course_lib.checks.transformer_block import (
    LAYER_NORM,
    LAYER_NORM_BACKWARD,
    TRANSFORMER_BLOCK,
    check_layer_norm,
    check_layer_norm_backward,
    check_transformer_block,
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
    "check_softmax_backward",
    "check_self_attention_backward",
    "check_rnn_forward",
    "check_rnn_backward",
    "check_attention_rows",
    "check_blockwise_attention",
    "check_causal_mask",
    "check_masked_attention_weights",
    "check_multi_head_self_attention",
    "check_layer_norm",
    "check_layer_norm_backward",
    "check_transformer_block",
    "check_make_inputs_and_targets",
    "check_causal_lm_loss",
    "check_next_token_probabilities",
    "check_attend_with_cache",
    "check_cross_attention",
    "check_cross_attention_backward",
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
        SOFTMAX_BACKWARD,
        SELF_ATTENTION_BACKWARD,
        RNN_FORWARD,
        RNN_BACKWARD,
        ATTENTION_ROWS,
        BLOCKWISE_ATTENTION,
        CAUSAL_MASK,
        MASKED_ATTENTION_WEIGHTS,
        MULTI_HEAD_SELF_ATTENTION,
        LAYER_NORM,
        LAYER_NORM_BACKWARD,
        TRANSFORMER_BLOCK,
        MAKE_INPUTS_AND_TARGETS,
        CAUSAL_LM_LOSS,
        NEXT_TOKEN_PROBABILITIES,
        ATTEND_WITH_CACHE,
        CROSS_ATTENTION,
        CROSS_ATTENTION_BACKWARD,
    )
}
"""Function name -> its checker (cases, reference, known mistakes), for the grader."""
