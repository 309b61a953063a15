import sys

from otus.cli import main

sys.exit(main())
