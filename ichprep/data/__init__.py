"""convert's images as a network's input, the same for training and inference.

``dataset`` makes items of a store (neighbouring slices stacked, labels attached), ``batches``
turns a loader's uint8 batch into the network's input on its device, ``workers`` decides how many
processes read them.
"""
