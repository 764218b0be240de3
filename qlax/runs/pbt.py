"""Population-based training (Jaderberg et al. 2017) over a population trained in one compile.

    result = qlax.sweep(config, {"lr": [1e-4, 3e-4, 1e-3, 3e-3]}, seeds=4,
                        callbacks=[qlax.runs.pbt.PBT(perturb=("lr", "eps_end"), every=4)])

Every `every` chunks the members are ranked by their last greedy check (the chunk's
`greedy_return`; the 100-episode training average where the run makes no checks). The
worst `fraction` each take over the whole training state of one of the best `fraction`
(exploit: parameters, optimizer, replay, environments; `ChunkReport.replace_members`)
and its dynamic settings, each setting in `perturb` multiplied by one of `factors` and
kept within the setting's range (explore). It happens between chunks, inside the running
program's state: nothing recompiles, because dynamic settings are traced values.

Who copied whom, and every member's perturbed settings after each round, are written to
the run directory's `pbt.csv` (the lineage; `plotting.pbt_lineage` draws it). The
choices come from the run's seed and the chunk, and are carried out before the next
checkpoint, so a resumed PBT run goes on bit for bit.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from qlax.core.files import write_whole
from qlax.runs.callbacks import ChunkReport
from qlax.settings.config import DYNAMIC_SETTINGS, ConfigError, TrainConfig, field_limits, owners

LINEAGE_FILE = "pbt.csv"
PBT_STREAM = 0x9B7  # mixed into the seed of the choices, apart from every other stream


@dataclasses.dataclass
class PBT:
    """Exploit and explore every `every` chunks: the worst `fraction` of the members copy one
    of the best `fraction` and perturb the settings named in `perturb` by one of `factors`."""

    perturb: tuple[str, ...] = ("lr",)
    every: int = 4
    fraction: float = 0.25
    factors: tuple[float, ...] = (0.8, 1.25)

    @staticmethod
    def saved(fields: dict | None) -> PBT | None:
        """The PBT a checkpoint's manifest recorded (None for a run without)."""
        if not isinstance(fields, dict):
            return None
        try:
            return PBT(perturb=tuple(fields["perturb"]), every=int(fields["every"]), fraction=float(fields["fraction"]),
                       factors=tuple(float(f) for f in fields["factors"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"the manifest's pbt = {str(fields)[:80]} is not a PBT qlax wrote") from None

    def check(self, config: TrainConfig) -> PBT:
        """This PBT for `config`, or one line that says what is wrong."""
        if not self.perturb:
            raise ConfigError("pbt: name the dynamic settings to perturb, e.g. --pbt lr,eps_end")
        read = owners(config)
        for name in self.perturb:
            if name not in DYNAMIC_SETTINGS:
                raise ConfigError(f"pbt: {name!r} is not a dynamic setting; PBT perturbs {', '.join(DYNAMIC_SETTINGS)}")
            if name not in read:
                raise ConfigError(f"pbt: algorithm {config.algorithm} with these choices never reads {name}")
        if self.every < 1 or not 0 < self.fraction <= 0.5 or not self.factors or min(self.factors) <= 0:
            raise ConfigError(f"pbt: every = {self.every} (>= 1), fraction = {self.fraction} (in (0, 0.5]) and "
                              f"factors = {self.factors} (positive) are out of range")
        if config.early_stop:
            raise ConfigError("pbt: early stop freezes members that PBT ranks and replaces: turn it off "
                              "(--no-early-stop, early_stop: false)")
        return self

    def copies(self, members: int) -> int:
        """Members replaced in each round: the worst `fraction`, at least one."""
        return max(1, int(self.fraction * members))

    def __call__(self, report: ChunkReport) -> None:
        count = report.members.count
        if report.chunk % self.every or count < 2 or report.chunk >= report.num_chunks:  # none after the last chunk
            return
        greedy = report.metrics["greedy_return"]
        score = np.where(np.isfinite(greedy), greedy, -np.inf) if np.isfinite(greedy).any() \
            else np.nan_to_num(report.metrics["avg_return_100"], nan=-np.inf)
        order = np.argsort(score, kind="stable")
        n = self.copies(count)
        losers, winners = order[:n], order[-n:]
        rng = np.random.default_rng([report.config.seed, report.chunk, PBT_STREAM])
        sources = rng.choice(winners, size=n)
        hparams = {name: values.copy() for name, values in report.hparams.items()}
        for dst, src in zip(losers, sources):
            for name, values in hparams.items():
                values[dst] = values[src]
            for name in self.perturb:
                low, high = field_limits(name)
                hparams[name][dst] = np.clip(hparams[name][src] * rng.choice(self.factors), low, high)
        report.replace_members(dict(zip(losers.tolist(), sources.tolist())), hparams)
        if report.run_dir is not None:
            _write_lineage(report.run_dir / LINEAGE_FILE, report.chunk, dict(zip(losers, sources)), score,
                           {name: hparams[name] for name in self.perturb})


def _write_lineage(path: Path, chunk: int, copies: dict, score: np.ndarray, settings: dict[str, np.ndarray]) -> None:
    """Append one round to pbt.csv: per member its score, whom it copied (itself if none) and
    its perturbed settings from now on; rows of this chunk or later (a resumed run's
    repeat) are replaced."""
    header = ["chunk", "member", "score", "copied_from", *settings]
    kept = []
    if path.exists():
        with path.open() as file:
            kept = [row for row in csv.reader(file)][1:]
        kept = [row for row in kept if row and int(row[0]) < chunk]
    rows = [[chunk, m, f"{score[m]:.6g}", int(copies.get(m, m)), *(f"{settings[k][m]:.6g}" for k in settings)]
            for m in range(len(score))]

    def write(partial: Path) -> None:
        with partial.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            writer.writerows(kept + rows)

    write_whole(path, write)
