import sys

from readbench.cli.main import main

sys.exit(main())
