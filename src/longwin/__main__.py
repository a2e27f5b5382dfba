import sys

from longwin.cli import main

sys.exit(main())
