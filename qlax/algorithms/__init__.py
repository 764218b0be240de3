"""The algorithms, one module each: `dqn`, `c51`, `qrdqn`, `iqn`, `mdqn`, `pqn`, and `agent`
(what every agent shares).

The interface they implement and their registry by name live in
`qlax.components.contract`, below the settings that validate against them; its names are
re-exported here, where people look for them (`qlax.algorithms.Algorithm`, `Rollout`, ...).
"""

from qlax.components.contract import (ALGORITHMS, MEMBERS, Act, Algorithm, Init, Learn, Learned, MemoryParts,
                                      Rollout, any_member, make, module)

__all__ = ["ALGORITHMS", "MEMBERS", "Act", "Algorithm", "Init", "Learn", "Learned", "MemoryParts", "Rollout",
           "any_member", "make", "module"]
