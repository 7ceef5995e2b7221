"""`specstress report`: one self-contained HTML page per run (`<run>/report/index.html`).

Every section renders from the tables that exist and says plainly which stage has not run
when its table is absent. Aggregates and a bounded set of selected scenarios go into the
page, never the run's rows, so its weight does not grow with the run.
"""
