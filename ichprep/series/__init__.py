"""The second stage: a sequence model over each series' ordered slices, fed by the fold CNNs' embeddings.

``order`` puts slices in series order, ``embed`` turns images into pooled features and logits,
``model`` is the bidirectional RNN, ``train`` fits it on out-of-fold embeddings (`train-series`),
``network`` saves and loads the two-stage model.pt, ``predict`` applies it series by series,
``recipes`` holds the published 2019 configurations.
"""
