"""`python -m chainload CMD ...`: the umbrella form of the multi-call program."""

import sys

from chainload.chain import main

sys.exit(main())
