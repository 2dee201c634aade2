import sys

from mobile_bridge.cli import main

sys.exit(main())
