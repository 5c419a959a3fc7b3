import sys

from readbench.cli import main

sys.exit(main())
