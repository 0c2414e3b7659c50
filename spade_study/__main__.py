import sys

from spade_study.cli import main

sys.exit(main())
