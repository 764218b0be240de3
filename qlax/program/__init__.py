"""The compiled program: every member's books around an algorithm (`trainer`), episode
records, greedy evaluation, the member axis over devices, and memory plans."""
