"""The second stage: a sequence model over each series' ordered slices, fed by the fold CNNs' embeddings.

``order`` puts slices in series order, ``embeddings`` is the file of per-image features and logits,
``stage`` the complete series a sequence model trains on (their augmentation, the baselines it must
beat), ``config`` the options of `train-series`, and ``train`` fits it on the engine. The sequence
network is ``models.series_net``; applying a two-stage model is ``predict.two_stage``.
"""
