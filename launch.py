"""``python launch.py [overrides]`` / ``python launch.py -m <grid>``: train from a checkout.

The same Hydra app as ``epx train`` and ``python -m epx`` (``epx.cli.hydra_main``): it
composes ``conf/config.yaml`` and runs one job (``epx.run.train``) per override set.
"""

from epx.cli import hydra_main

if __name__ == "__main__":
    hydra_main()
