from memjax.cli import run

run()
