"""epx entry point: ``python launch.py [overrides]`` or ``python launch.py -m <grid>``.

Composes ``conf/config.yaml`` and runs one job (``epx.run.train``) per override set.
"""

import hydra
from omegaconf import DictConfig

import epx.analysis.grid  # noqa: F401  (the epx.* resolvers of conf/hydra, before Hydra resolves anything)
import epx.selection  # noqa: F401  (registers the config resolvers)
import epx.threads  # noqa: F401
from epx.cli import run_job


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_job(cfg)


if __name__ == "__main__":
    main()
