import sys

from cloudfs.cli.main import main

sys.exit(main())
