"""course_lib: the companion package of the self-attention course.

Modules, from the math up (each imports only the layers above it in this list):

    shapes      input checks that speak the course's notation (numpy only)
    attention   the reference implementation of self-attention (numpy only)
    rnn         the Elman RNN that attention is compared with (numpy only)
    longrange   lesson 06's experiments: path lengths, gradient decay, recall (numpy, math)
    parallel    lesson 07's measurements: timings, FLOPs, peak memory (numpy, math)
    data        the hand-made embedding table, sentences and designed projections
    viz         the lessons' figures (matplotlib), each a function returning a Figure
    widgets     the lessons' interactive explorers (ipywidgets)
    envcheck    the welcome notebook's environment check
    checks      one checker per exercise function: check_<function>(fn)
    release     generates the student exercise notebooks from the instructor's masters
    grading     grades submitted notebooks in a sandbox into a gradebook
    site        the static website and slide decks (make site, make slides)

The command line: `python -m course_lib release | execute | grade | site | slides`
(see `python -m course_lib -h`).
"""

__version__ = "0.1.0"
