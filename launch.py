"""epx entry point: ``python launch.py [overrides]`` or ``python launch.py -m <grid>``.

Composes ``conf/config.yaml`` and runs one job (``epx.run.train``) per override set.
"""

import hydra
from omegaconf import DictConfig

import epx.config  # noqa: F401  (every resolver of conf/, before Hydra composes anything)
from epx.cli import run_job


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_job(cfg)


if __name__ == "__main__":
    main()
