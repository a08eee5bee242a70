import sys

from xmppd.cli.daemon import main

sys.exit(main())
