"""course_lib: the companion package of the self-attention course.

Modules, from the math up:
    attention  the reference implementation of self-attention (numpy only)
    rnn        the Elman RNN that attention is compared with (numpy only)
"""

__version__ = "0.1.0"
