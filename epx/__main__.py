"""``python -m epx [overrides]``: training, the same Hydra app as ``epx train`` and ``python launch.py``.

(``epx train`` sets ``sys.argv[0]`` to this file, so Lightning's DDP launcher, which starts
the other ranks by running ``sys.argv`` again, reaches the same app.)
"""

from epx.cli import hydra_main

if __name__ == "__main__":
    hydra_main()
