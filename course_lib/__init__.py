"""course_lib: the companion package of the self-attention course.

Modules, from the math up (each imports only the layers above it in this list):

    shapes      input checks that speak the course's notation (numpy only)
    attention   the reference implementation of self-attention, forward and backward (numpy only)
    rnn         the Elman RNN and the GRU that attention is compared with, forward and
                backward (numpy only)
    transformer the Transformer block around attention: LayerNorm, GELU, the feed-forward
                network, RoPE, causal multi-head attention, the pre-norm block; forward and
                backward (numpy only)
    gpt         a tiny GPT built from those blocks: its loss and gradients, sampling,
                generation with and without a KV cache (numpy only)
    seq2seq     an encoder-decoder of those blocks with cross-attention, and the GRU
                encoder-decoder it is compared with: loss, gradients, greedy translation
                (numpy only)
    standin     a stand-in for a value that cannot cross a process boundary (imports nothing)
    training    lessons 05-06's machinery: the marked-token task, models, Adam, the training
                loop, the gradient check (numpy, math)
    longrange   lesson 06's experiments: a trained RNN, GRU and attention layer at growing
                distance; path lengths, gradient decay, trained models (numpy, math, training)
    parallel    lesson 07's measurements: timings, FLOPs, peak memory (numpy, math)
    data        the hand-made embedding table, sentences and designed projections
    corpus      the tiny GPT's text (Python's own help topics) and its character tokenizer
    translation_task  lesson 13's generated task: dates in words to ISO dates, with the rule
                that aligns each target character with its source words
    lm_training lessons 10-12's machinery: the bigram baseline, training a language model,
                checkpoints with how they were made (numpy, math, corpus, training)
    heads       lesson 12's measurements of trained heads: previous-token and induction scores,
                ablation
    seq2seq_training  lesson 13's experiments: training the encoder-decoder, exact match, the
                alignment share, the RNN comparison, checkpoints
    viz         the lessons' figures (matplotlib), each a function returning a Figure
    diagrams    schematic diagrams (the attention pipeline, multi-head, the block), with alt text
    widgets     the lessons' interactive explorers (ipywidgets); head_explorer (lesson 12) and
                alignment_explorer (lesson 13) build on its Explorer
    envcheck    the welcome notebook's environment check
    checks      one checker per exercise function: check_<function>(fn)
    release     generates the student exercise notebooks from the instructor's masters
    grading     grades submitted notebooks in a sandbox into a gradebook (grading.lms: Canvas and
                Moodle import files from a roster)
    hub         the course on a JupyterHub: the learners' copy, the nbgitpuller link,
                collecting the exercises
    hosted      the set-up cell that installs course_lib in hosted notebooks (Colab, Binder)
    site        the static website and slide decks (make site, make slides)

The command line: `python -m course_lib release | execute | grade | hub-publish | hub-link |
collect | setup-cells | site | slides | experiment longrange | train gpt | seq2seq | seq2seq-rnn`
(see `python -m course_lib -h`).
"""

__version__ = "0.1.0"
