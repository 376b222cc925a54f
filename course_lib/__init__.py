"""course_lib: the companion package of the self-attention course.

Modules, from the math up (each imports only the layers above it in this list):

    shapes      input checks that speak the course's notation (numpy only)
    attention   the reference implementation of self-attention (numpy only)
    rnn         the Elman RNN that attention is compared with (numpy only)
    data        the hand-made embedding table, sentences and designed projections
    viz         the lessons' figures (matplotlib), each a function returning a Figure
    widgets     the lessons' interactive explorers (ipywidgets)
    envcheck    the welcome notebook's environment check
    checks      one checker per exercise function: check_<function>(fn)
    release     generates the student exercise notebooks from the instructor's masters

The command line: `python -m course_lib release | execute` (see `python -m course_lib -h`).
"""

__version__ = "0.1.0"
