"""The networks: timm backbones with ichprep's six-label head, where their starting weights come from, their files.

timm is the model zoo: its implementations are the reference ones, and its own loader fetches,
caches and adapts ImageNet weights (the head dropped for six labels, the RGB stem tiled for more
channels). ``backbones`` names, builds and groups them; ``pretrained`` decides where a run's
starting weights come from and refuses, before any work, weights that cannot be had or do not fit;
``saved`` holds model.pt files as typed records (single CNNs, fold ensembles, two-stage models),
``series_net`` is the second stage's network, ``apply`` runs a CNN over images (checks, loader,
TTA, embeddings), and ``device`` says where a network runs and in what precision: what training
and inference share.
"""
