"""`rairl demo`'s parts: its settings (`config`, light: the parent process only schedules), the jobs it runs on
worker processes (`runs`: training, evaluation, reward uses) and the pooling of their outputs (`results`)."""
