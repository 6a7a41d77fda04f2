"""Closed-loop episodes of a policy or an expert on a task, apart from training: running them
(:mod:`.closed_loop`), recording them as demonstrations (:mod:`.demos`) and scoring them
(:mod:`.evaluation`). Training, the study, the viewer and the command lines use them."""
