"""The NumPy reference backend: the oracle every faster backend is tested against.

Every kernel declared in `gradkernels._catalog`, each in its family's module (activations,
softmax, losses, linear), following the contract in `gradkernels._backends` (outputs first, then
inputs, then scalars; arrays already validated and laid out by the API layer). Written for
clarity and numerical care first, with idiomatic NumPy speed.
"""
