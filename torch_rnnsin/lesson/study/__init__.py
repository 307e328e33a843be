"""Is stateful prediction always worse? A grid of small models (seq_len x noise x hidden
size x training mode x seed x learning rate), each trained until its validation loss
stops improving, then scored in both prediction modes on the test part. Modules:
``grid`` (settings), ``trainer`` (many models as one tensor program, early stopping),
``groups`` (the grid over worker processes), ``report`` (table, answer, plots). The
command is ``torch_rnnsin.commands.study``.
"""
