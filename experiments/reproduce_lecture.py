"""Every number of the lecture beside jaxdescent's: the same as `jaxdescent reproduce`.

Run: python experiments/reproduce_lecture.py [--json]
"""

import sys

from jaxdescent.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
