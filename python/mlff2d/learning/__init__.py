"""Active learning: ``mlff2d learn RECIPE`` grows a dataset where a committee disagrees.

:mod:`.workflow` holds the recipe, settings, result and :class:`~.workflow.LearnWorkflow`;
:mod:`.loop` the iterations; :mod:`.explore` committee MD, σ_F per frame and the selection.
"""
