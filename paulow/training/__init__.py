"""Training: cross-validated fitting, fine-tuning, planning for a time limit and resuming.

One module per job: `loop` (one fold's epochs), `epoch` (steps, validation, stop rules),
`schedules` (optimiser and learning-rate schedules), `network` (the network and its loss),
`evaluation` (whole-image scores), `tuning` (threshold, smallest object, test score),
`cross_validation` (the folds), `planner` and `planning` (the time budget), `timing` (where the
seconds go), `state` and `resume` (going on after an interruption), `metadata` (the model file's
training record), `run` (a whole run) and `finetuning`.
"""
