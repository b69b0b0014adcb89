import sys

from amslib.cli import main

sys.exit(main())
