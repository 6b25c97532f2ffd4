"""Pictures and playgrounds: everything a chapter draws or lets you move.

``plots`` (live loss plots, axes), ``widgets`` (the ``Playground`` panel), and
one module per chapter's pictures: ``landscapeviz`` (02), ``tokenviz`` (03),
``filterviz`` (05), ``sftviz`` (06), ``rlviz`` (08-09), ``quantviz`` (10),
``loraviz`` (11), ``distillviz`` (12), ``scaleviz`` (13), ``cotviz`` (14),
``collapseviz`` (15), ``grpoviz`` (16). Domain code never imports this layer.
"""
