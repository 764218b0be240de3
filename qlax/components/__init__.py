"""The parts algorithms are built from: replay buffers, networks, exploration, n-step,
losses, the learner, normalization and features, and the contract between the trainer
and an algorithm. They import only `qlax.core` and the environments' interface."""
