"""course_lib: the companion package of the self-attention course.

Modules, from the math up (each imports only the layers above it in this list):

    shapes      input checks that speak the course's notation (numpy only)
    attention   the reference implementation of self-attention, forward and backward (numpy only)
    rnn         the Elman RNN and the GRU that attention is compared with, forward and
                backward (numpy only)
    training    lessons 05-06's machinery: the marked-token task, models, Adam, the training
                loop, the gradient check (numpy, math)
    longrange   lesson 06's experiments: a trained RNN, GRU and attention layer at growing
                distance; path lengths, gradient decay, trained models (numpy, math, training)
    parallel    lesson 07's measurements: timings, FLOPs, peak memory (numpy, math)
    data        the hand-made embedding table, sentences and designed projections
    viz         the lessons' figures (matplotlib), each a function returning a Figure
    widgets     the lessons' interactive explorers (ipywidgets)
    envcheck    the welcome notebook's environment check
    checks      one checker per exercise function: check_<function>(fn)
    release     generates the student exercise notebooks from the instructor's masters
    grading     grades submitted notebooks in a sandbox into a gradebook (grading.lms: Canvas and
                Moodle import files from a roster)
    hub         the course on a JupyterHub: the nbgitpuller link, collecting the exercises
    hosted      the set-up cell that installs course_lib in hosted notebooks (Colab, Binder)
    site        the static website and slide decks (make site, make slides)

The command line: `python -m course_lib release | execute | grade | hub-link | collect |
setup-cells | site | slides | experiment longrange`
(see `python -m course_lib -h`).
"""

__version__ = "0.1.0"
